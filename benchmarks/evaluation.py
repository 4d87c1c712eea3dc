"""Checks of the evaluation metrics on the real anime faces, and a DCGAN run's metrics over training.

  python benchmarks/evaluation.py real [--num_real=10000] [--afd_num=3249]
  python benchmarks/evaluation.py run --workdir=RUN [--num_samples=5000]

`real` scores image sets whose answer is known against the training split of
tfds:anime_faces (prepare it first: python -m gan_jax.data.anime_faces
--manual_dir=../shared/data/anime-faces): the held-out test split (should
look like the data: FD/KID near 0, AFD near the data's, ratio near 1), exact
copies of training images (a memorising generator), mirrored copies, one face
repeated (total collapse) and noise. `run` evaluates every checkpoint of a
training run (python -m gan_jax.evaluate --step=all) and tabulates the metrics
by step. Both append a section with the command, machine and date to
benchmarks/evaluation.md.
"""

import argparse
import datetime
import os
import platform
import sys
import time

import ml_collections
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import evaluate  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.data import sources  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.data.images import ImagePolicy  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.metrics import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

RESULTS = os.path.join(REPO, "benchmarks", "evaluation.md")
COLUMNS = ["fd_anime", "kid_anime", "afd", "tags/hair_color_tv", "tags/eye_color_tv", "dup_rate",
           "diversity_ratio", "dup_rate_anime", "mem/ratio_pixels", "mem/copy_rate_pixels",
           "mem/ratio_anime", "mem/copy_rate_anime"]


def _machine() -> str:
  import jax  # pylint: disable=g-import-not-at-top
  return f"{platform.node()}: {os.cpu_count()} CPU cores, {jax.devices()[0].device_kind}"


def _table(rows, label: str) -> str:
  columns = [c for c in COLUMNS if any(c in values for _, values in rows)]
  lines = [f"| {label} | " + " | ".join(columns) + " |",
           "|---" * (len(columns) + 1) + "|"]
  for name, values in rows:
    cells = [f"{values[c]:.4g}" if c in values else "" for c in columns]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _append(section: str) -> None:
  with open(RESULTS, "a") as f:
    f.write(section + "\n")
  print(section)


def real_sets(args) -> None:
  """Known answers: held-out real, copies, mirrored copies, collapse, noise vs the train split."""
  policy = ImagePolicy(size=64)
  train, _ = sources.load_source("tfds:anime_faces", policy, split="train")
  test, _ = sources.load_source("tfds:anime_faces", policy, split="test")
  rng = np.random.default_rng(0)
  reference = np.asarray(train[np.sort(rng.choice(len(train), args.num_real, replace=False))])
  half = len(test) // 2
  heldout_a, heldout_b = np.asarray(test[:half]), np.asarray(test[half:])
  options = common.evaluation(metrics="fd_anime,kid_anime,tags,duplicates,memorisation,afd",
                              num_samples=half)
  options.afd_num = args.afd_num
  evaluator = evaluator_lib.Evaluator(options, reference, heldout_b,
                                      "tfds:anime_faces train split")
  n = len(heldout_a)
  copies = reference[rng.choice(len(reference), n, replace=False)]
  candidates = {
      "held-out real (test split, first half)": heldout_a,
      "copies of training images (memoriser)": copies,
      "mirrored copies of training images": copies[:, :, ::-1],
      "one face repeated (collapse)": np.repeat(heldout_a[:1], n, axis=0),
      "uniform noise": rng.integers(0, 256, heldout_a.shape, dtype=np.uint8),
  }
  rows, seconds = [], {}
  for name, images in candidates.items():
    start = time.perf_counter()
    report = evaluator(images)
    seconds[name] = time.perf_counter() - start
    rows.append((name, evaluator_lib.flatten(report, prefix="")))
  protocol = report["memorisation"]["protocol"]
  section = [
      f"\n## Known answers on the real faces ({datetime.date.today()})\n",
      f"Command: `python benchmarks/evaluation.py real --num_real={args.num_real} "
      f"--afd_num={args.afd_num}`; machine: {_machine()}.",
      f"Reference: {args.num_real} random images of the tfds:anime_faces train split (64x64). "
      f"Each set has {n} images; memorisation compares with the other half of the test split "
      f"({protocol['n_heldout']} images). AFD: animeface, 96x96 bicubic + 48 px white padding, "
      f"first {min(args.afd_num, n)} images. KID: {options.kid_subsets} subsets of "
      f"{options.kid_subset_size}.\n",
      _table(rows, "set"),
      "\nSeconds per set: " + ", ".join(f"{k.split(' (')[0]} {v:.0f}" for k, v in seconds.items()),
  ]
  _append("\n".join(section))


def run_over_training(args) -> None:
  """Every checkpoint of a run, evaluated with the offline metrics."""
  overrides = {"metrics": args.metrics, "num_samples": args.num_samples,
               "num_real": args.num_real}
  start = time.perf_counter()
  reports = evaluate.evaluate_run(args.workdir, "all", overrides)
  elapsed = time.perf_counter() - start
  rows = [(str(r["step"]), evaluator_lib.flatten(r["metrics"], prefix="")) for r in reports]
  config = ml_collections.ConfigDict(evaluate.checkpoint_lib.Checkpointer(
      os.path.join(args.workdir, "checkpoints"), keep=0).restore_config())
  section = [
      f"\n## A DCGAN run's metrics over training ({datetime.date.today()})\n",
      f"Run: `python launch.py --config=configs/dcgan.py {args.run_flags}` "
      f"({config.model.name}, {config.data.image_size}x{config.data.image_size}, widths "
      f"{config.model.g_width}/{config.model.d_width}, batch {config.train.batch_size}). "
      f"Evaluated with `python benchmarks/evaluation.py run --workdir=RUN "
      f"--num_samples={args.num_samples} --num_real={args.num_real} --metrics={args.metrics}` "
      f"({elapsed:.0f} s for {len(reports)} checkpoints); machine: {_machine()}. Samples: "
      f"the EMA generator on fixed latents; reference: {args.num_real} train-split images, "
      "held-out: the test split.\n",
      _table(rows, "step"),
  ]
  _append("\n".join(section))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("what", choices=["real", "run"])
  parser.add_argument("--num_real", type=int, default=10_000)
  parser.add_argument("--afd_num", type=int, default=1000)
  parser.add_argument("--workdir", default="")
  parser.add_argument("--num_samples", type=int, default=5000)
  parser.add_argument("--metrics", default="fd_anime,kid_anime,tags,duplicates,memorisation,afd")
  parser.add_argument("--run_flags", default="", help="the run's launch flags, for the record")
  args = parser.parse_args()
  if not os.path.exists(RESULTS):
    with open(RESULTS, "w") as f:
      f.write("# Evaluation metrics: checks and measurements\n\nWritten by "
              "`benchmarks/evaluation.py` (see its docstring).\n")
  real_sets(args) if args.what == "real" else run_over_training(args)


if __name__ == "__main__":
  main()
