"""Latent walks of a trained generator: python -m gan_jax.latent_walks.

  python -m gan_jax.latent_walks --workdir=workdirs/anime --mode=interpolate \
      --rows=8 --columns=10 --out=interpolations.png [--step=latest|N|best] [--seed=0]
  python -m gan_jax.latent_walks --workdir=workdirs/anime --mode=sweep --dims=0,1,2,3 \
      --columns=9 --out=sweeps.png

What the lectures show with a generator: moving between two latents changes the
image smoothly (a face looking left and one looking right meet at a frontal
face, not at a double exposure of the two), and sweeping one latent
coordinate shows what it controls.

  interpolate  each row walks from one fixed latent to another: along the great
               circle (slerp) for Gaussian z, whose mass lies near a sphere, along
               the line for uniform z (--method chooses).
  sweep        each row takes one fixed latent and sets coordinate d (one row per
               --dims entry) to evenly spaced values over [-extent, extent]
               (--extent, default 3 std for Gaussian z, the whole [-1, 1] for uniform z).

The EMA generator draws the whole grid as one batch (BatchNorm layers see the
grid's statistics, as the progress grids do). For interpolations the command
also reports the cross-fade gap, how far the walk's images stay from a double
exposure: per row, the mean over its interior points of
|x_t - ((1 - t) x_0 + t x_1)| / |x_0 - x_1| in pixels (0: the walk is a
cross-fade of its ends; larger: it passes through other images).
A conditional run (configs/anime_tags.py) walks with one label held fixed:
--tags names it as gan_jax.sample_tags does ("blue hair red eyes").
"""

import json
import os
from typing import Any, Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data as data_lib
from gan_jax import evaluate, sampling, writers
from gan_jax.errors import UserError, run_command
from gan_jax.registry import check_choice

_WALK_STREAM = 0x77616c6b  # 'walk': latents of the walks, apart from grids and evaluation
MODES = ("interpolate", "sweep")
METHODS = ("slerp", "linear")


def interpolate(z0: jax.Array, z1: jax.Array, num: int, method: str = "slerp") -> jax.Array:
  """(num, dim): `num` >= 2 evenly spaced points from z0 to z1 (both included), along the line
  or along the great circle through them with the norm interpolated linearly (slerp;
  the line where z0 and z1 are parallel)."""
  check_choice("interpolation", method, METHODS)
  if num < 2:
    raise ValueError(f"an interpolation needs at least 2 points, got {num}")
  t = jnp.linspace(0.0, 1.0, num)[:, None]
  line = (1.0 - t) * z0 + t * z1
  if method == "linear":
    return line
  n0, n1 = jnp.linalg.norm(z0), jnp.linalg.norm(z1)
  u0, u1 = z0 / n0, z1 / n1
  angle = jnp.arccos(jnp.clip(jnp.dot(u0, u1), -1.0, 1.0))
  sin = jnp.sin(angle)
  safe = jnp.where(sin > 1e-6, sin, 1.0)
  direction = (jnp.sin((1.0 - t) * angle) * u0 + jnp.sin(t * angle) * u1) / safe
  return jnp.where(sin > 1e-6, direction * ((1.0 - t) * n0 + t * n1), line)


def interpolation_latents(seed: int, rows: int, columns: int, latent_dim: int,
                          distribution: str, method: str) -> jax.Array:
  """(rows, columns, latent_dim): one interpolation per row between latents fixed by `seed`."""
  ends = sampling.fixed_latents(seed, 2 * rows, latent_dim, distribution, stream=_WALK_STREAM)
  return jnp.stack([interpolate(ends[2 * i], ends[2 * i + 1], columns, method)
                    for i in range(rows)])


def sweep_latents(seed: int, dims: Sequence[int], columns: int, latent_dim: int,
                  distribution: str, extent: float) -> jax.Array:
  """(len(dims), columns, latent_dim): row i is one latent fixed by `seed` with coordinate
  dims[i] set to `columns` evenly spaced values over [-extent, extent]."""
  bad = [d for d in dims if not 0 <= d < latent_dim]
  if bad or not dims:
    raise ValueError(f"--dims needs coordinates in [0, {latent_dim}), got {list(dims)}")
  base = sampling.fixed_latents(seed, 1, latent_dim, distribution, stream=_WALK_STREAM)[0]
  values = jnp.linspace(-extent, extent, columns)
  return jnp.stack([jnp.tile(base, (columns, 1)).at[:, d].set(values) for d in dims])


def crossfade_gap(images: np.ndarray) -> np.ndarray:
  """Per row of walk images (rows, columns, H, W, C), columns >= 3: the mean over interior
  columns of |x_t - ((1 - t) x_0 + t x_1)| / |x_0 - x_1| (module docstring)."""
  x = np.asarray(images, np.float64)
  rows, columns = x.shape[:2]
  x = x.reshape(rows, columns, -1)
  t = np.linspace(0.0, 1.0, columns)[None, 1:-1, None]
  fade = (1.0 - t) * x[:, :1] + t * x[:, -1:]
  distance = np.linalg.norm(x[:, 1:-1] - fade, axis=-1)
  ends = np.maximum(np.linalg.norm(x[:, 0] - x[:, -1], axis=-1), 1e-12)
  return distance.mean(axis=1) / ends


def latent_walks(workdir: str, mode: str, out: str, rows: int = 8, columns: int = 10,
                 dims: Sequence[int] = (0, 1, 2, 3), extent: float = 0.0, method: str = "",
                 step: str = "latest", seed: int = 0, tags: str = "") -> Dict[str, Any]:
  """Writes the walk grid of a run's EMA generator to `out` (PNG) and returns what was done,
  with the cross-fade gap for interpolations (module docstring); a conditional run needs
  `tags`, the label every image is drawn with."""
  check_choice("--mode", mode, MODES, UserError)
  if columns < 3 or rows < 1:
    raise UserError(f"a walk needs --columns >= 3 and --rows >= 1, got {columns} and {rows}")
  config, generator, params, stats, restored = evaluate.restore_generator(workdir, step)
  label = None
  if data_lib.label_classes(config.data):
    from gan_jax import sample_tags  # pylint: disable=g-import-not-at-top
    if not tags:
      raise UserError("the run is conditional: name the label to walk with, e.g. "
                      "--tags='blue hair red eyes' (anime colours) or --tags=cat (a class of "
                      "data.labels=class)")
    label_set = data_lib.label_set_of(config.data)
    label = sample_tags.parse_request(tags, label_set)
  elif tags:
    raise UserError(f"--tags={tags!r}: the run is unconditional (config.data.labels is empty)")
  if config.data.source.startswith("toy:"):
    raise UserError("latent walks draw images; toy runs plot their points (samples/*.png)")
  model = config.model
  gaussian = model.latent_dist == "gaussian"
  try:
    if mode == "interpolate":
      z = interpolation_latents(seed, rows, columns, model.latent_dim, model.latent_dist,
                                method or ("slerp" if gaussian else "linear"))
    else:
      z = sweep_latents(seed, list(dims), columns, model.latent_dim, model.latent_dist,
                        extent or (3.0 if gaussian else 1.0))
  except ValueError as e:
    raise UserError(str(e)) from None
  shape = z.shape
  labels = None if label is None else jnp.tile(jnp.asarray(label, jnp.int32),
                                               (shape[0] * shape[1], 1))
  images = jax.jit(lambda p, s, z, labels: sampling.to_uint8(
      sampling.generate(generator, p, s, z, labels=labels)))(
          params, stats, z.reshape(-1, shape[-1]), labels)
  images = np.asarray(images).reshape(*shape[:2], *images.shape[1:])
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  writers.save_png(out, writers.make_grid(images.reshape(-1, *images.shape[2:]), shape[1]))
  result = {"step": restored, "mode": mode, "rows": shape[0], "columns": shape[1], "out": out}
  if label is not None:
    result["label"] = label_set.describe(label)
  if mode == "interpolate":
    gaps = crossfade_gap(images)
    result["crossfade_gap"] = {"mean": round(float(gaps.mean()), 4),
                               "min": round(float(gaps.min()), 4)}
  return result


def main(argv):
  """The command line (absl flags)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  del argv
  f = flags.FLAGS
  writers.quiet_library_logs()
  result = run_command(lambda: latent_walks(f.workdir, f.mode, f.out, f.rows, f.columns,
                                            _coordinates(f.dims), f.extent, f.method, f.step,
                                            f.seed, f.tags))
  print(json.dumps(result, indent=1), flush=True)


def _coordinates(values: Sequence[str]) -> list:
  """--dims as integers; UserError for a value that is not one."""
  try:
    return [int(v) for v in values]
  except ValueError:
    raise UserError(f"--dims needs integers, got {','.join(values)}") from None


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "The run's --workdir.", required=True)
  flags.DEFINE_enum("mode", "interpolate", list(MODES), "interpolate or sweep (module docstring).")
  flags.DEFINE_string("out", "walks.png", "Where to write the PNG grid.")
  flags.DEFINE_integer("rows", 8, "interpolate: walks (one per row).")
  flags.DEFINE_integer("columns", 10, "Images per row (>= 3).")
  flags.DEFINE_list("dims", ["0", "1", "2", "3"], "sweep: latent coordinates, one row each.")
  flags.DEFINE_float("extent", 0.0, "sweep: values over [-extent, extent] (0: 3 for Gaussian z, "
                     "1 for uniform).")
  flags.DEFINE_string("method", "", "interpolate: slerp or linear ('': slerp for Gaussian z, "
                      "linear for uniform).")
  flags.DEFINE_string("step", "latest", "Checkpoint step: N, latest or best.")
  flags.DEFINE_integer("seed", 0, "Seed of the latents.")
  flags.DEFINE_string("tags", "", "Conditional runs: the label to walk with, e.g. 'blue hair "
                      "red eyes'.")


if __name__ == "__main__":
  _define_flags()
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(main)
