"""Train-step throughput of a config on synthetic device-resident images, beside PyTorch.

  python benchmarks/throughput.py --config=configs/dcgan.py --iters=50
  python benchmarks/throughput.py --config=configs/dcgan.py --batches=128,512,2048 \\
      --dtypes=float32,bfloat16 --calls=1,10 --torch

Times `iters` iterations (each = train.d_steps D updates + 1 G update) of the
same jitted, state-donating step that training uses, after compilation and
`warmup` iterations, on one fixed random uint8 batch already on the devices
(so input feeding is excluded). For every batch size x compute dtype
(config.model.dtype) x iterations per device call (`--calls`: K > 1 runs K
iterations in one lax.scan, so the host dispatches once per K) it prints one
JSON row: images/s (batch_size x iterations / s), ms per iteration, the model FLOPs
per iteration (an analytic count of the step's convolutions and matmuls with the
models in their reference forms: common.model_flops; a count, not a measurement),
the achieved TFLOP/s from them and their share of
`--peak_tflops`, and the device memory the compiled step needs (XLA's memory
analysis). With --torch (and PyTorch installed) the same batch sizes and dtypes
run through benchmarks/torch_dcgan.py's PyTorch DCGAN-64 in the same process,
and each JAX row gets `vs_best_torch`: its images/s over the best PyTorch row of
that batch size (meaningful for the DCGAN-64 configs only).
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
import torch_dcgan  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import models, parallel  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", "configs/dcgan.py", "Config to time.",
                                          lock_config=True)
_ITERS = flags.DEFINE_integer("iters", 50, "Timed iterations.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed iterations after compilation.")
_BATCHES = flags.DEFINE_list("batches", [], "Global batch sizes ('': the config's).")
_DTYPES = flags.DEFINE_list("dtypes", [], "Compute dtypes ('': the config's model.dtype).")
_CALLS = flags.DEFINE_list("calls", ["1"], "Iterations per device call (lax.scan when > 1).")
_TORCH = flags.DEFINE_bool("torch", False, "Also time the PyTorch DCGAN-64 (needs a GPU).")
_PEAK = flags.DEFINE_float("peak_tflops", 989.0,
                           "Device peak for the utilisation column (H100 SXM dense bf16: 989).")
_OUT = flags.DEFINE_string("out", "", "Also append the rows to this JSONL file.")


def measure(config, iters: int, warmup: int, iterations_per_call: int = 1,
            peak_tflops: float = 989.0) -> dict:
  """Throughput figures of `config`'s train step (see module docstring)."""
  mesh = parallel.make_mesh()
  k = iterations_per_call
  compiled, state, compile_s, flops = common.build(config, mesh, k)
  images = common.random_batch(config, mesh)
  for _ in range(max(1, warmup // k)):
    state, metrics = compiled(state, images)
  jax.block_until_ready(metrics)
  calls = max(1, iters // k)
  start = time.perf_counter()
  for _ in range(calls):
    state, metrics = compiled(state, images)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  per_iter_s = seconds / (calls * k)
  tflops = flops / k / per_iter_s / 1e12
  return {
      "impl": f"gan_jax (jax {jax.__version__})",
      "model": config.model.name,
      "device": f"{mesh.size} x {jax.devices()[0].device_kind}",
      "dtype": config.model.get("dtype", "float32"),
      "upconv": config.model.get("upconv", ""),
      "downconv": models.resolve_downconv(config.model.downconv) if "downconv" in config.model
                  else "",
      "batch_size": config.train.batch_size,
      "d_steps": config.train.d_steps,
      "d_loop": config.train.get("d_loop", "unroll"),
      "d_passes": config.train.get("d_passes", "separate"),
      "iters_per_call": k,
      "images_per_sec": round(config.train.batch_size / per_iter_s, 1),
      "ms_per_iter": round(1e3 * per_iter_s, 3),
      "model_gflop_per_iter": round(flops / k / 1e9, 1),
      "tflops": round(tflops, 1),
      "utilisation": round(tflops / peak_tflops, 3),
      "mem_gb": common.memory_gb(compiled),
      "compile_s": round(compile_s, 1),
  }


def main(argv):
  del argv
  config = _CONFIG.value
  batches = [int(b) for b in _BATCHES.value] or [config.train.batch_size]
  dtypes = _DTYPES.value or [config.model.get("dtype", "float32")]
  rows = []

  def emit(row):
    rows.append(row)
    print(json.dumps(row), flush=True)
    if _OUT.value:
      with open(_OUT.value, "a") as f:
        f.write(json.dumps(row) + "\n")

  best_torch = {}
  if _TORCH.value:
    for batch in batches:
      for dtype in dtypes:
        row = torch_dcgan.measure(batch, dtype, _ITERS.value, _WARMUP.value)
        best_torch[batch] = max(best_torch.get(batch, 0.0), row["images_per_sec"])
        emit(row)
  for batch in batches:
    for dtype in dtypes:
      for k in (int(c) for c in _CALLS.value):
        config.train.batch_size = batch
        config.model.dtype = dtype
        row = measure(config, _ITERS.value, _WARMUP.value, k, _PEAK.value)
        if batch in best_torch:
          row["vs_best_torch"] = round(row["images_per_sec"] / best_torch[batch], 2)
        emit(row)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main)
