"""Data pipeline figures: preparing, decoding, and what feeding adds to a train step.

  python benchmarks/data.py --config=configs/dcgan.py --manual_dir=../shared/data/anime-faces

Prints one JSON line per measurement:
  prepare       anime_faces TFDS preparation from the manual dir (images/s)
  decode        load_source of the zips and of tfds:anime_faces, uncached
                (images/s), and the cached reload (s)
  feed          for each feeding mode (host, device, stream): ms per `batch(step)` alone, ms per
                train step on a fixed batch, ms per step fed by the feeder,
                and the overhead feeding adds to the step (%)
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


def measure_feeding(config, iters: int, feed_iters: int) -> list:
  """Feed cost of each mode, through the same pipeline training uses."""
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
    for _ in range(2):  # warm up
      state, metrics = compiled(state, fixed)
    jax.block_until_ready(metrics)

    def loop(batch_of):
      nonlocal state
      for s in range(iters):
        state, metrics = compiled(state, batch_of(s))
      return jax.block_until_ready(metrics)

    _, fixed_s = _timed(lambda: loop(lambda s: fixed))
    _, fed_s = _timed(lambda: loop(feeder.batch))
    rows.append({
        "what": f"feed={mode}", "batch": config.train.batch_size,
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
    for row in measure_feeding(config, _ITERS.value, _FEED_ITERS.value):
      print(json.dumps(row), flush=True)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main)
