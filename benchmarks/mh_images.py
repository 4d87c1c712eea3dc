"""Does D correct an image GAN's samples once it is tuned against the generator that is sampled?

  python benchmarks/mh_images.py --workdir=W [--step=N] [--tune=0,500,2000] [--mh_steps=0,50] \
      [--metrics=fd_anime,kid_anime,duplicates] [--num_samples=1000] [--num_real=5000]

`evaluate --mh_steps=K` corrects each sample with a Metropolis-Hastings chain accepted by the
checkpoint's D as training left it (gan_jax/evaluate.py). The toy lab first trains D on
against the frozen G-EMA (lab.tune_against_ema), and on the ring that tuning is what made
the correction work (benchmarks/rejection_toy.md). This does the same for an image run: D
alone takes `--tune` more updates (cumulative; the run's D loss, optimizer state and
penalties, in train mode, so its BatchNorm statistics follow too) against the frozen G-EMA
on the run's training images (batches drawn by a fixed seed), and after each the G-EMA's
samples are evaluated plainly and MH-corrected (`--mh_steps`), as `evaluate` would.
Reports go to a scratch folder (`--out_dir`), never the run's eval/.
"""

import argparse
import json
import os
import sys
import tempfile
from typing import Sequence

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import data as data_lib, evaluate, train  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.step import batch_to_float  # pylint: disable=g-import-not-at-top,wrong-import-position


def tuner(config, generator, discriminator):
  """A jitted f(state, real uint8 batch, key) -> state: one D update against the state's G."""
  g_tx, d_tx = train.make_optimizers(config)
  step_fn = train.make_step(config, generator, discriminator, g_tx, d_tx)

  def update(state, real, key, labels=None):
    state, _ = step_fn.d_update(state, batch_to_float(real), key, labels)
    return state.replace(step=state.step + 1)
  return jax.jit(update)


def measure(workdir: str, step: str, tune: Sequence[int], mh_steps: Sequence[int],
            metrics: str, num_samples: int, num_real: int, out_dir: str):
  """(step, data summary, rows, the tuned state): one row (D updates, K, report, fraction of
  proposals taken or None) per tuning level in `tune` (cumulative) and K in `mh_steps`
  (module docstring)."""
  if list(tune) != sorted(tune):
    raise ValueError(f"tuning levels must be ascending, got {tune}")
  config, generator, state, step = evaluate.restore_state(workdir, step)
  config.eval.metrics, config.eval.num_samples = metrics, num_samples
  config.eval.num_real = num_real
  _, discriminator = train.make_models(config)
  images, labels, summary = data_lib.decode_split(config.data, config.data.get("split", ""),
                                                  config.data.max_images)
  update = tuner(config, generator, discriminator)
  state = state.replace(g_params=state.ema_params)  # D is tuned against what is sampled
  rng = np.random.default_rng([config.seed, 0x6d68])
  evaluators, configs, rows, done = {}, {}, [], 0
  for target in tune:
    for _ in range(target - done):
      index = rng.integers(0, len(images), config.train.batch_size)
      key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x74756e65 + int(state.step))
      state = update(state, images[index], key, None if labels is None else labels[index])
    done = target
    for k in mh_steps:
      if k not in evaluators:
        configs[k] = config.copy_and_resolve_references()
        configs[k].eval.mh_steps = k
        evaluators[k] = evaluate.RunEvaluator(configs[k], generator, out_dir,
                                              discriminator=discriminator)
      report, _ = evaluators[k](step, state.ema_params, state.g_stats, state.d_params,
                                state.d_stats)
      taken = None
      if k:  # the report's record beside the metrics
        record = os.path.join(out_dir, "eval", f"step_{step}{evaluate.samples_suffix(configs[k])}"
                              ".json")
        with open(record) as f:
          taken = json.load(f)["mh_acceptance"]
      rows.append((target, k, report, taken))
  return step, summary, rows, state


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", default="latest")
  parser.add_argument("--tune", default="0,500,2000", help="D updates (cumulative, ascending)")
  parser.add_argument("--mh_steps", default="0,50", help="proposals per chain (0: plain)")
  parser.add_argument("--metrics", default="fd_anime,kid_anime,duplicates")
  parser.add_argument("--num_samples", type=int, default=1000)
  parser.add_argument("--num_real", type=int, default=5000)
  parser.add_argument("--out_dir", default="", help="scratch folder for the reports")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  names = args.metrics.split(",")
  step, summary, rows, _ = measure(
      args.workdir, args.step, [int(t) for t in args.tune.split(",")],
      [int(k) for k in args.mh_steps.split(",")], args.metrics, args.num_samples,
      args.num_real, args.out_dir or tempfile.mkdtemp(prefix="mh_images_"))
  lines = [f"# {args.workdir} step {step}: {summary} ({common.run_stamp()})", "",
           "| D updates against the G-EMA | MH proposals | " + " | ".join(names)
           + " | proposals taken |", "|---|---|" + "---|" * (len(names) + 1)]
  for target, k, report, taken in rows:
    cells = [", ".join(f"{name} {value:.4g}" for name, value in report[metric]["values"].items()
                       if not name.endswith("_std")) for metric in names]
    lines.append(f"| {target} | {k} | " + " | ".join(cells) + " | "
                 + ("" if taken is None else f"{taken:.0%}") + " |")
  print("\n".join(lines), flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
