"""Euclidean k-nearest-neighbour queries between feature sets, computed in blocks.

Squared distances use the expansion ||a||^2 + ||b||^2 - 2 a.b (one matrix
product per block, the fast path on BLAS) clamped at 0 against rounding. Work
is split into (block_size x block_size) tiles of the distance matrix, so the
memory beyond the inputs is a few tiles (2048 x 2048 float64: 32 MiB each)
whatever the set sizes: 70k x 70k points with 2048 features never hold their
39 GB distance matrix. The time is that of the N x M x D products: measured
with numpy's OpenBLAS on this project's 2-core CPU machine (one core busy),
`kth_neighbour_radii` of 10k points x 2048 features takes 14 s in float64 and
8 s with dtype=np.float32 (~1e-7 relative rounding of squared distances); the
cost grows as N * M, so 70k x 70k is about 50x that (~10 min float64).

All functions take numpy-compatible (N, D) arrays; the result is numpy.
"""

from typing import Iterator, Tuple

import numpy as np

DEFAULT_BLOCK_SIZE = 2048


def _as_points(x, name: str, dtype) -> np.ndarray:
  x = np.asarray(x, dtype=dtype)
  if x.ndim != 2:
    raise ValueError(f"{name} must be (num_points, num_features), got shape {x.shape}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} has NaN or Inf entries")
  return x


def _check_same_width(a: np.ndarray, b: np.ndarray) -> None:
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")


def sq_distance_blocks(a, b, block_size: int = DEFAULT_BLOCK_SIZE, dtype=np.float64
                       ) -> Iterator[Tuple[slice, slice, np.ndarray]]:
  """Yields (rows, cols, ||a[rows, None] - b[None, cols]||^2) tiles covering the (N, M) matrix."""
  a, b = _as_points(a, "a", dtype), _as_points(b, "b", dtype)
  _check_same_width(a, b)
  if block_size < 1:
    raise ValueError(f"block_size must be positive, got {block_size}")
  a_sq, b_sq = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
  for i in range(0, a.shape[0], block_size):
    rows = slice(i, min(i + block_size, a.shape[0]))
    for j in range(0, b.shape[0], block_size):
      cols = slice(j, min(j + block_size, b.shape[0]))
      tile = a[rows] @ b[cols].T
      tile *= -2
      tile += a_sq[rows, None]
      tile += b_sq[None, cols]
      np.maximum(tile, 0, out=tile)
      yield rows, cols, tile


def pairwise_sq_distances(a, b, block_size: int = DEFAULT_BLOCK_SIZE, dtype=np.float64) -> np.ndarray:
  """The full (N, M) matrix of squared Euclidean distances between rows of `a` and of `b`.

  The result itself is N * M numbers (20k x 20k float64: 3.2 GB); for large
  sets use `nearest`, `kth_neighbour_radii` or `count_in_balls`, which keep
  only tiles.
  """
  a, b = _as_points(a, "a", dtype), _as_points(b, "b", dtype)
  out = np.empty((a.shape[0], b.shape[0]), dtype)
  for rows, cols, tile in sq_distance_blocks(a, b, block_size, dtype):
    out[rows, cols] = tile
  return out


def _smallest_k(values: np.ndarray, indices: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
  """The k smallest `values` of each row (sorted ascending) and their `indices`."""
  if values.shape[1] > k:
    part = np.argpartition(values, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(values, part, axis=1)
    indices = np.take_along_axis(indices, part, axis=1)
  order = np.argsort(values, axis=1, kind="stable")
  return np.take_along_axis(values, order, axis=1), np.take_along_axis(indices, order, axis=1)


def nearest(queries, references, k: int = 1, exclude_self: bool = False,
            block_size: int = DEFAULT_BLOCK_SIZE, dtype=np.float64) -> Tuple[np.ndarray, np.ndarray]:
  """(distances, indices), each (N, k): the k references nearest to each query, nearest first.

  Euclidean distances (not squared). With `exclude_self`, `queries` and
  `references` are the same set and reference i is never a neighbour of query
  i (duplicates at other indices still count, at distance 0).
  """
  queries = _as_points(queries, "queries", dtype)
  references = _as_points(references, "references", dtype)
  available = references.shape[0] - int(exclude_self)
  if exclude_self and queries.shape[0] != references.shape[0]:
    raise ValueError("exclude_self needs queries and references to be the same set")
  if not 1 <= k <= available:
    raise ValueError(f"k must be in [1, {available}] for {references.shape[0]} references"
                     f"{' (excluding self)' if exclude_self else ''}, got {k}")
  n = queries.shape[0]
  best_sq = np.full((n, 0), np.inf, dtype)
  best_idx = np.zeros((n, 0), np.int64)
  current_rows = None
  out_sq = np.empty((n, k), dtype)
  out_idx = np.empty((n, k), np.int64)
  for rows, cols, tile in sq_distance_blocks(queries, references, block_size, dtype):
    if rows != current_rows:
      current_rows = rows
      best_sq = np.full((rows.stop - rows.start, 0), np.inf, dtype)
      best_idx = np.zeros((rows.stop - rows.start, 0), np.int64)
    if exclude_self:
      overlap = np.arange(max(rows.start, cols.start), min(rows.stop, cols.stop))
      tile[overlap - rows.start, overlap - cols.start] = np.inf
    tile_idx = np.broadcast_to(np.arange(cols.start, cols.stop), tile.shape)
    best_sq, best_idx = _smallest_k(np.concatenate([best_sq, tile], axis=1),
                                    np.concatenate([best_idx, tile_idx], axis=1), k)
    if cols.stop == references.shape[0]:
      out_sq[rows], out_idx[rows] = best_sq, best_idx
  return np.sqrt(out_sq), out_idx


def kth_neighbour_radii(x, k: int, block_size: int = DEFAULT_BLOCK_SIZE, dtype=np.float64) -> np.ndarray:
  """(N,) distance from each point of `x` to its k-th nearest other point of `x`."""
  distances, _ = nearest(x, x, k=k, exclude_self=True, block_size=block_size, dtype=dtype)
  return distances[:, k - 1]


def count_in_balls(points, centres, radii, block_size: int = DEFAULT_BLOCK_SIZE,
                   dtype=np.float64) -> np.ndarray:
  """(N,) int: for each point, how many closed balls B(centres[j], radii[j]) contain it."""
  radii = np.asarray(radii, dtype)
  centres_n = np.shape(centres)[0]
  if radii.shape != (centres_n,):
    raise ValueError(f"radii must have shape ({centres_n},), got {radii.shape}")
  sq_radii = radii**2
  counts = np.zeros(np.shape(points)[0], np.int64)
  for rows, cols, tile in sq_distance_blocks(points, centres, block_size, dtype):
    counts[rows] += np.count_nonzero(tile <= sq_radii[None, cols], axis=1)
  return counts
