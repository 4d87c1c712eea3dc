"""How far a run's G (or D) kernels are from orthogonal, and how far they moved from their
initialisation, at every saved checkpoint: whether an orthogonal regulariser had anything to
undo (benchmarks/README.md, the BigGAN ablation).

  python benchmarks/weight_drift.py --workdirs=RUN_A,RUN_B [--network=g] \
      [--layers=ConditionalBatchNorm,Conv_] [--out=FILE.md]

For each run the initial state is rebuilt from the saved config (same seed, same init as the
run's). Per checkpoint, over the network's kernels (constraints.KERNELS: every conv and dense
kernel with at least two outputs, embeddings excluded): the mean filter coherence
(regularisers.filter_coherence: RMS cosine between distinct output filters; 0 orthogonal)
over the kernels whose filters can be orthogonal (no more outputs than fan-in), beside that
of Gaussian kernels of the same shapes and norms (what a random init has), the sum of
BigGAN's orthogonality penalty (regularisers.orthogonality_penalty: what the regulariser
minimises), and the relative distance from the initial kernels, ||W - W0|| / ||W0|| over
all of them together.
`--layers` repeats the figures for groups of kernels: each group a regular expression
searched in the kernels' '/'-joined paths, as config patterns are (e.g.
`ConditionalBatchNorm` for BigGAN's conditioning maps).
"""

import argparse
import os
import re
import sys
from typing import Sequence

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import checkpoint as checkpoint_lib, constraints, evaluate, regularisers, train  # pylint: disable=g-import-not-at-top,wrong-import-position


def kernels(params, pattern: str = constraints.KERNELS):
  """{path name ('GBlock_0/Conv_0/kernel'): kernel} of every parameter whose
  constraints.path_name matches `pattern` (as constraint and regulariser patterns do) and
  has >= 2 outputs."""
  regex = re.compile(pattern)
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    name = constraints.path_name(path)
    if regex.search(name) and leaf.ndim >= 2 and leaf.shape[-1] >= 2:
      out[name] = np.asarray(leaf, np.float32)
  return out


def summary(current, initial) -> dict:
  """The three figures of the module docstring for kernels `current` against `initial` (NaN
  coherence without a kernel that can be orthogonal, NaN moved from all-zero kernels)."""
  coherence = [float(regularisers.filter_coherence(w)) for w in current.values()
               if w.shape[-1] <= w.size // w.shape[-1]]
  penalty = sum(float(regularisers.orthogonality_penalty(w)) for w in current.values())
  moved = sum(float(np.sum((current[k] - initial[k]) ** 2)) for k in current)
  size = sum(float(np.sum(initial[k] ** 2)) for k in current)
  return {"coherence": float(np.mean(coherence)) if coherence else float("nan"),
          "penalty": penalty,
          "moved": float(np.sqrt(moved / size)) if size else float("nan")}


def group(kernels_by_path, pattern: str):
  """The kernels whose path contains a match of the regular expression `pattern` (all for
  ''); a ValueError naming the paths when none does."""
  chosen = {k: w for k, w in kernels_by_path.items() if re.search(pattern, k)}
  if not chosen:
    raise ValueError(f"no kernel path matches {pattern!r}; the paths: "
                     f"{', '.join(kernels_by_path)}")
  return chosen


def drift(workdir: str, network: str, layers: Sequence[str] = ("",)):
  """[(step, layers, summary)] of a run's checkpoints for each group of kernels in `layers`
  (regular expressions; '' all), step 0 the rebuilt initial state, after 'Gaussian' rows:
  random kernels of the initial ones' shapes and norms."""
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  checkpointer = checkpoint_lib.Checkpointer(directory, keep=0, async_save=False)
  try:
    steps = evaluate.choose_steps(checkpointer, "all")
    config = evaluate.config_with_eval(checkpointer.restore_config(steps[-1]))
    _, abstract = evaluate.abstract_state(config)
    g, d = train.make_models(config)
    g_tx, d_tx = train.make_optimizers(config)
    initial = kernels(getattr(jax.jit(train.make_init(config, g, d, g_tx, d_tx))(),
                              f"{network}_params"))
    rng = np.random.default_rng(0)
    gaussian = {k: rng.normal(size=w.shape).astype(np.float32) for k, w in initial.items()}
    gaussian = {k: w * np.linalg.norm(initial[k]) / np.linalg.norm(w) for k, w in gaussian.items()}
    rows = []

    def add(step, current, start):
      for pattern in layers:
        rows.append((step, pattern, summary(group(current, pattern), group(start, pattern))))

    add("Gaussian", gaussian, gaussian)
    add(0, initial, initial)
    for step in steps:
      state, _, _ = checkpointer.restore(abstract, step)
      add(step, kernels(getattr(state, f"{network}_params")), initial)
  finally:
    checkpointer.close()
  return config, rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdirs", required=True, help="comma-separated run directories")
  parser.add_argument("--network", default="g", choices=("g", "d"))
  parser.add_argument("--layers", default="", help="comma-separated path regexes: one "
                      "group of kernels each ('': all)")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  lines = [f"# {args.network.upper()}'s kernels: orthogonality and drift from the initialisation",
           "", f"Command: `python benchmarks/weight_drift.py --workdirs={args.workdirs} "
           f"--network={args.network} --layers={args.layers}` ({common.run_stamp()}).", "",
           "| run | orthogonal reg | iteration | kernels | filter coherence (mean) | "
           "orthogonality penalty (sum) | moved from init |", "|---|---|---|---|---|---|---|"]
  layers = args.layers.split(",")
  for workdir in args.workdirs.split(","):
    config, rows = drift(workdir, args.network, layers)
    strength = config.optim.get(f"{args.network}_orthogonal_reg", 0.0)
    for step, pattern, s in rows:
      moved = "" if step == "Gaussian" else f"{s['moved']:.3f}"
      lines.append(f"| {os.path.basename(workdir.rstrip('/'))} | {strength:g} | {step} | "
                   f"{pattern or 'all'} | "
                   f"{s['coherence']:.4f} | {s['penalty']:.1f} | {moved} |")
      print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
