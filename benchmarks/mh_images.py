"""Does D correct an image GAN's samples once it is tuned against the generator that is sampled?

  python benchmarks/mh_images.py --workdir=W [--step=N] [--tune=0,500,2000] [--mh_steps=50] \
      [--metrics=fd_anime,kid_anime,duplicates] [--num_samples=1000] [--num_real=5000] [--seed=S] \
      [--tune_lr=LR]

`evaluate --mh_steps=K` corrects each sample with a Metropolis-Hastings chain accepted by
the checkpoint's D; with `--mh_tune=N` that D is first trained on alone for N updates against
the frozen EMA generator (gan_jax/d_tuning.py: the run's D loss, optimizer state and
penalties, in train mode, on the training images outside the evaluation's reference set).
This measures both on one checkpoint: the plain samples, then each MH length in
`--mh_steps` after each tuning in `--tune` (0: D as saved), as `evaluate` reports them.
Tunings restart from the checkpoint; a tuning's first n updates are any longer one's, so
the rows follow one D trained on. Reports go to a scratch folder (`--out_dir`), never the
run's eval/.
"""

import argparse
import json
import os
import sys
import tempfile
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import evaluate, train  # pylint: disable=g-import-not-at-top,wrong-import-position


def measure(workdir: str, step: str, tune: Sequence[int], mh_steps: Sequence[int],
            metrics: str, num_samples: int, num_real: int, out_dir: str,
            seed: Optional[int] = None, tune_lr: Optional[float] = None):
  """(step, the tuning images' description, rows): rows (D updates, K, report, fraction of
  proposals taken or None), first the plain samples (0, 0), then every tuning in `tune`
  with every K > 0 in `mh_steps` (module docstring). `seed` (default: the run's) fixes the
  evaluation's latents, reference subset, proposals and tuning batches: another seed is
  another draw of the whole protocol on the same checkpoint. `tune_lr` (default: the run's
  D learning rate) is the tuning's: at 0 D's weights stay as saved and only its batch
  statistics (BatchNorm's running averages, a spectral norm's power iteration) follow the
  EMA generator's samples."""
  config, generator, state, step = evaluate.restore_state(workdir, step)
  if seed is not None:
    config.seed = seed
  if tune_lr is not None:
    config.optim.d_lr = tune_lr
  config.eval.metrics, config.eval.num_samples = metrics, num_samples
  config.eval.num_real = num_real
  _, discriminator = train.make_models(config)
  config.eval.mh_steps, config.eval.mh_tune = 0, 0
  plain = evaluate.RunEvaluator(config, generator, out_dir, discriminator=discriminator)
  rows, tuning = [], "no images (no tuning asked for)"
  for target, k in [(0, 0)] + [(t, k) for t in tune for k in mh_steps if k]:
    run_evaluator = plain.with_correction(k, target)  # the references decoded and featurised once
    report, _ = run_evaluator(step, state)
    tuning = run_evaluator.tuning_description or tuning
    taken = None
    if k:  # the report's record beside the metrics
      with open(os.path.join(out_dir, "eval", f"step_{step}"
                             f"{evaluate.samples_suffix(run_evaluator.config)}"
                             ".json")) as f:
        taken = json.load(f)["mh_acceptance"]
    rows.append((target, k, report, taken))
  return step, tuning, rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", default="latest")
  parser.add_argument("--tune", default="0,500,2000",
                      help="D updates before the correction (0: D as saved)")
  parser.add_argument("--mh_steps", default="50",
                      help="proposals per chain (the plain samples come first)")
  parser.add_argument("--metrics", default="fd_anime,kid_anime,duplicates")
  parser.add_argument("--num_samples", type=int, default=1000)
  parser.add_argument("--num_real", type=int, default=5000)
  parser.add_argument("--seed", type=int, default=None,
                      help="the evaluation's seed (default: the run's): another draw of it all")
  parser.add_argument("--tune_lr", type=float, default=None,
                      help="the tuning's D learning rate (default: the run's; 0: only D's "
                      "batch statistics move)")
  parser.add_argument("--out_dir", default="", help="scratch folder for the reports")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  names = args.metrics.split(",")
  step, tuning, rows = measure(
      args.workdir, args.step, [int(t) for t in args.tune.split(",")],
      [int(k) for k in args.mh_steps.split(",")], args.metrics, args.num_samples,
      args.num_real, args.out_dir or tempfile.mkdtemp(prefix="mh_images_"), args.seed,
      args.tune_lr)
  options = ("" if args.seed is None else f", evaluation seed {args.seed}") + (
      "" if args.tune_lr is None else f", tuning learning rate {args.tune_lr:g}")
  lines = [f"# {args.workdir} step {step}{options}: D tuned on {tuning} ({common.run_stamp()})", "",
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
