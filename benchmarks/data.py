"""Data pipeline figures: preparing, decoding, and what feeding adds to a train step.

  python benchmarks/data.py --config=configs/dcgan.py --manual_dir=../shared/data/anime-faces

Prints one JSON line per measurement:
  prepare       anime_faces TFDS preparation from the manual dir (images/s)
  decode        load_source of the zips and of tfds:anime_faces, uncached
                (images/s), and the cached reload (s)
  feed          for each feeding mode (host, device, stream): ms per `batch(step)` alone, ms per
                train step on a fixed batch, ms per step fed by the feeder,
                and the overhead feeding adds to the step (%). feed=device has
                two rows: `feed=device` passes batch(step), gathered by its own
                jitted call, to the step (the standalone path); `feed=device fused`
                compiles the selection into the step, one device call per
                iteration, as training runs it (gan_jax/fed_step.py). Its
                ms_per_batch_alone is the standalone batch(step), for reference.
                The target: device feeding (fused) adds < 2% to the step. The
                fixed and fed steps are timed alternately `repeats` times, each
                `iters` steps, and each keeps its fastest.

Smaller runs (no data preparation; e.g. on a CPU):

  python benchmarks/data.py --config=configs/anime.py:smoke --manual_dir=DIR --skip_prepare
"""

import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", "configs/dcgan.py", "Config to feed.",
                                          lock_config=True)
_MANUAL_DIR = flags.DEFINE_string("manual_dir", "../shared/data/anime-faces",
                                  "anime_faces zips + tags.csv.")
_ITERS = flags.DEFINE_integer("iters", 20, "Timed train steps per feeding mode.")
_FEED_ITERS = flags.DEFINE_integer("feed_iters", 200, "Timed batch(step) calls per mode.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating timings of the fixed and the fed "
                                "step per mode; each column keeps its fastest.")
_SKIP_PREPARE = flags.DEFINE_bool("skip_prepare", False, "Only measure feeding.")


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def measure_prepare_and_decode(manual_dir: str, policy, workdir: str) -> list:
  from gan_jax.data import anime_faces  # pylint: disable=g-import-not-at-top
  rows = []
  builder, seconds = _timed(lambda: anime_faces.prepare(manual_dir, os.path.join(workdir, "tfds")))
  n = sum(split.num_examples for split in builder.info.splits.values())
  rows.append({"what": "prepare anime_faces (TFDS, array_record)", "images": n,
               "seconds": round(seconds, 2), "images_per_sec": round(n / seconds)})
  for spec, kwargs in ((f"zip:{manual_dir}/*.zip", {}),
                       ("tfds:anime_faces", {"tfds_dir": os.path.join(workdir, "tfds")})):
    cache = os.path.join(workdir, "cache")
    (array, _), seconds = _timed(lambda: data_lib.load_source(spec, policy, cache_dir=cache, **kwargs))
    rows.append({"what": f"decode {spec} (uncached)", "images": len(array),
                 "seconds": round(seconds, 2), "images_per_sec": round(len(array) / seconds)})
    (array, _), seconds = _timed(lambda: data_lib.load_source(spec, policy, cache_dir=cache, **kwargs))
    rows.append({"what": f"reload {spec} from the cache", "images": len(array),
                 "seconds": round(seconds, 3)})
  return rows


def _timed_steps(compiled, state, iters: int, args_of):
  """(state, seconds) of `iters` calls compiled(state, args_of(step)), after 2 untimed."""
  for s in range(2):
    state, metrics = compiled(state, args_of(s))
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for s in range(iters):
    state, metrics = compiled(state, args_of(s))
  jax.block_until_ready(metrics)
  return state, time.perf_counter() - start


def measure_feeding(config, iters: int, feed_iters: int, repeats: int = 1) -> list:
  """Feed cost of each mode, through the same pipeline and compiled steps training uses."""
  mesh = parallel.make_mesh()
  compiled, state, _, _ = common.build(config, mesh)
  fixed = common.random_batch(config, mesh)
  rows = []
  for mode in ("host", "device", "stream"):
    config.data.feed = mode
    feeder, _ = data_lib.make_pipeline(config.data, batch_size=config.train.batch_size,
                                       d_steps=config.train.d_steps, seed=0, mesh=mesh)
    jax.block_until_ready(feeder.batch(0))
    _, feed_s = _timed(lambda: jax.block_until_ready([feeder.batch(s) for s in range(feed_iters)]))
    # feed=device twice: its batch(step) passed to the step, then its selection compiled into
    # the step as training runs it (fed_step.py); each against the fixed batch just before.
    ways = [("", None)] + ([(" fused", list(common.build(config, mesh, feeder=feeder)[:2]))]
                           if feeder.device_data() is not None else [])
    for suffix, fused in ways:
      fixed_s = fed_s = float("inf")
      for _ in range(repeats):  # alternating, the fastest of each: less noise in a 2% figure
        state, seconds = _timed_steps(compiled, state, iters, lambda s: fixed)
        fixed_s = min(fixed_s, seconds)
        if fused is None:
          state, seconds = _timed_steps(compiled, state, iters, lambda s: feeder.batch(s))
        else:
          data = feeder.device_data()
          fused[1], seconds = _timed_steps(fused[0], fused[1], iters, lambda s: data)
        fed_s = min(fed_s, seconds)
      rows.append({
          "what": f"feed={mode}{suffix}", "batch": config.train.batch_size,
          "ms_per_batch_alone": round(1e3 * feed_s / feed_iters, 3),
          "ms_per_step_fixed_batch": round(1e3 * fixed_s / iters, 2),
          "ms_per_step_fed": round(1e3 * fed_s / iters, 2),
          "feed_overhead_pct": round(100 * (fed_s - fixed_s) / fixed_s, 2),
          "device": f"{mesh.size} x {jax.devices()[0].device_kind}",
      })
    feeder.close()
  return rows


def main(argv):
  del argv
  config = _CONFIG.value
  policy = data_lib.ImagePolicy(config.data.image_size, config.data.crop, config.data.max_upscale)
  with tempfile.TemporaryDirectory() as workdir:
    rows = [] if _SKIP_PREPARE.value else measure_prepare_and_decode(
        os.path.expanduser(_MANUAL_DIR.value), policy, workdir)
    for row in rows:
      print(json.dumps(row), flush=True)
    config.data.source = f"zip:{_MANUAL_DIR.value}/*.zip"
    config.data.cache_dir = os.path.join(workdir, "cache")
    for row in measure_feeding(config, _ITERS.value, _FEED_ITERS.value, _REPEATS.value):
      print(json.dumps(row), flush=True)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main)
