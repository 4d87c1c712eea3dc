"""Train-step throughput of a config on synthetic device-resident images.

  python benchmarks/throughput.py --config=configs/anime.py --iters=50
  python benchmarks/throughput.py --config=configs/anime.py --config.train.batch_size=512

Times `iters` iterations (each = train.d_steps D updates + 1 G update) of the
same jitted, state-donating step that training uses, after compilation and
`warmup` iterations, on one fixed random uint8 batch already on the devices
(so input feeding is excluded). Prints images/s (batch_size x iterations / s),
ms per iteration and the compiled FLOPs per iteration from XLA's cost analysis.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", "configs/anime.py", "Config to time.",
                                          lock_config=True)
_ITERS = flags.DEFINE_integer("iters", 50, "Timed iterations.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed iterations after compilation.")


def measure(config, iters: int, warmup: int) -> dict:
  """Throughput figures of `config`'s train step (see module docstring)."""
  mesh = parallel.make_mesh()
  compiled, state, compile_s, flops = common.build(config, mesh)
  images = common.random_batch(config, mesh)
  for _ in range(warmup):
    state, metrics = compiled(state, images)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(iters):
    state, metrics = compiled(state, images)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  return {
      "device": f"{mesh.size} x {jax.devices()[0].device_kind}",
      "batch_size": config.train.batch_size,
      "d_steps": config.train.d_steps,
      "images_per_sec": round(config.train.batch_size * iters / seconds, 1),
      "ms_per_iter": round(1e3 * seconds / iters, 2),
      "compiled_gflop_per_iter": round(flops / 1e9, 1),
      "compile_s": round(compile_s, 1),
      "jax": jax.__version__,
  }


def main(argv):
  del argv
  print(json.dumps(measure(_CONFIG.value, _ITERS.value, _WARMUP.value)))


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main)
