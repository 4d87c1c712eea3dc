"""Streaming feeding for datasets too large to decode into memory.

`StreamFeeder` decodes every batch from the source's encoded examples in
background threads, a few batches ahead of training. It reads the same
(seed, position) stream of indices as HostFeeder (EpochSampler), so the
batches are a pure function of (seed, step) and a resumed run continues
exactly: the iterator's position is the step stored in the checkpoint. Each
process decodes only its own columns of the global batch (multi-host ready).

An example that cannot be used (unreadable, too small) is replaced by the next
usable one in source order, and its label by that example's: deterministic, so
resume stays exact, and counted (`skipped_counts`). Duplicates are not
detected in this mode. Given `labels` (int32 (N, heads), row i the label of
entry i) every batch is a LabeledBatch(images, labels), as from HostFeeder.
"""

import collections
import concurrent.futures
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import jax
import numpy as np
from jax.sharding import Mesh

from gan_jax import parallel
from gan_jax.data.feeding import Feeder, checked_labels, host_flips, to_devices
from gan_jax.data.images import Entry, ImagePolicy, SkipImage, decode_image
from gan_jax.data.labels import LabeledBatch
from gan_jax.data.sampler import EpochSampler
from gan_jax.errors import ConfigError, DataError


class StreamFeeder(Feeder):
  """Batches decoded on the fly with prefetching (see the module docstring)."""

  mode = "stream"

  def __init__(self, entries: Sequence[Entry], policy: ImagePolicy, *, batch_size: int,
               d_steps: int, seed: int, mesh: Mesh, hflip: bool = False, prefetch: int = 4,
               labels: Optional[np.ndarray] = None):
    if not entries:
      raise DataError("streaming needs at least one image")
    self.labels = self.label_table = checked_labels(labels, len(entries))
    processes = jax.process_count()
    if batch_size % processes:
      raise ConfigError(f"batch_size {batch_size} must divide by the {processes} processes")
    self.entries, self.policy = list(entries), policy
    self.batch_size, self.d_steps, self.seed, self.hflip = batch_size, d_steps, seed, hflip
    self.prefetch = max(1, prefetch)
    self.sharding = parallel.batch_sharding(mesh, batch_axis=1)
    # The global batch's columns this process decodes (all of them with one process).
    self.columns = parallel.process_rows(self.sharding, (d_steps, batch_size), axis=1)
    self.local = len(self.columns)
    self.sampler = EpochSampler(len(self.entries), seed)
    self._sampler_lock = threading.Lock()
    self._skips: Dict[int, tuple] = {}  # entry index -> (category, reason), first time seen
    self._pool = concurrent.futures.ThreadPoolExecutor(self.prefetch)
    self._pending: Dict[int, concurrent.futures.Future] = {}

  def _usable(self, index: int) -> Tuple[np.ndarray, int]:
    """(the decoded entry `index`, or the next usable one after it; that entry's index)."""
    for k in range(len(self.entries)):
      i = (index + k) % len(self.entries)
      name, read = self.entries[i]
      try:
        return decode_image(read(), self.policy), i
      except SkipImage as e:
        self._skips.setdefault(i, (name, e.category, str(e)))
    raise DataError(f"none of the {len(self.entries)} streamed images could be used")

  def host_batch(self, step: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """This process's columns of iteration `step`: images (d_steps, local batch, H, W, 3) and
    their labels (d_steps, local batch, heads), None without labels."""
    n = self.d_steps * self.batch_size
    with self._sampler_lock:
      index = self.sampler.indices(step * n, n).reshape(self.d_steps, self.batch_size)
    index = index[:, self.columns].ravel()
    decoded = [self._usable(int(i)) for i in index]
    batch = np.stack([image for image, _ in decoded])
    if self.hflip:
      flip = host_flips(self.seed, step, n).reshape(self.d_steps, self.batch_size)
      flip = flip[:, self.columns].ravel()
      batch[flip] = batch[flip, :, ::-1]
    labels = None
    if self.labels is not None:
      labels = self.labels[[used for _, used in decoded]].reshape(self.d_steps, self.local, -1)
    return batch.reshape(self.d_steps, self.local, *batch.shape[1:]), labels

  def batch(self, step: int) -> jax.Array:
    """Iteration `step`'s images (and labels) on the devices; starts decoding the next few."""
    for ahead in range(step, step + self.prefetch):
      if ahead not in self._pending:
        self._pending[ahead] = self._pool.submit(self.host_batch, ahead)
    for stale in [s for s in self._pending if s < step]:
      self._pending.pop(stale).cancel()
    images, labels = self._pending.pop(step).result()
    images = to_devices(self.sharding, images, self.batch_size)
    if labels is None:
      return images
    return LabeledBatch(images, to_devices(self.sharding, labels, self.batch_size))

  def skipped_counts(self) -> Dict[str, int]:
    """How many distinct source entries were replaced, by reason."""
    return dict(collections.Counter(category for _, category, _ in self._skips.values()))

  def skipped(self) -> List[tuple]:
    """(name, category, reason) of each replaced entry."""
    return list(self._skips.values())

  def close(self) -> None:
    """Stops the decoding threads."""
    self._pool.shutdown(wait=False, cancel_futures=True)
