"""BEGAN and EBGAN (auto-encoder discriminators) on the toy ring: mode coverage, and what
BEGAN's equilibrium controller and convergence measure do there.

  python benchmarks/began_toy.py --out=benchmarks/began_toy.md

Trains configs/toy_ring.py with model.name=began (MLP auto-encoder D, 3x128 ELU layers
each side, a 1-D code; MLP G) and each auto-encoder loss setting on every seed (vmapped,
gan_jax/lab.py), and writes a markdown table of PacGAN's modes covered and high-quality
fraction from 2,500 G-EMA samples, BEGAN's k over the last 100 iterations, and its
convergence measure M_global (mean of the first 50 and the last 100 iterations).
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import toy_ring  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import lab  # pylint: disable=g-import-not-at-top,wrong-import-position

# (loss, its options in config.loss.<loss>): the paper's BEGAN, other gammas and faster k,
# and EBGAN's margin.
SETTINGS = [
    ("began", dict(gamma=0.5, lambda_k=0.001)),
    ("began", dict(gamma=0.3, lambda_k=0.001)),
    ("began", dict(gamma=1.0, lambda_k=0.001)),
    ("began", dict(gamma=0.5, lambda_k=0.1)),
    ("began", dict(gamma=1.0, lambda_k=0.1)),
    ("ebgan", dict(margin=0.1)),
    ("ebgan", dict(margin=1.0)),
]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--settings", type=int, default=len(SETTINGS),
                      help="run the first N settings")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  seeds = list(range(args.seeds))
  lines = [
      "# Toy lab: BEGAN and EBGAN on the ring", "",
      f"Command: `python benchmarks/began_toy.py --seeds={args.seeds} --steps={args.steps}` "
      f"({common.run_stamp()}).", "",
      "configs/toy_ring.py with model.name=began: D an MLP auto-encoder (3x128 ELU layers each "
      "side, a 1-D code, L1 reconstruction error), G an MLP (3x128 ELU); Adam 1e-3 betas "
      f"(0, 0.9), batch 256, {args.steps} iterations, G-EMA 0.99, seeds 0..{args.seeds - 1}. "
      "Modes covered and high-quality fraction by PacGAN's protocol (2,500 G-EMA samples); "
      "k: BEGAN's equilibrium weight over the last 100 iterations; M: BEGAN's convergence "
      "measure L(x) + |gamma L(x) - L(G(z))|, first 50 -> last 100 iterations. Mean +/- std "
      "(min) over seeds. For comparison, the non-saturating GAN (the ring's MLP G and D, ReLU "
      "and LeakyReLU) covers 4.3 modes without a regulariser and 8.0 with SN layers (latent_choice.md, "
      "size 16).", "",
      "| loss | options | modes covered | high quality | k (end) | M start -> end | seconds |",
      "|---|---|---|---|---|---|---|",
  ]
  print("\n".join(lines), flush=True)
  for loss, options in SETTINGS[:args.settings]:
    config = toy_ring.get_config()
    config.model.name, config.loss.name = "began", loss
    config.loss[loss].update(options)
    start = time.perf_counter()
    states, metrics = lab.train_seeds(config, seeds, num_steps=args.steps)
    scores = lab.mode_metrics_seeds(config, states)
    if loss == "began":
      k = common.spread(np.asarray(metrics["began_k"])[:, -100:].mean(1), 3)
      convergence = np.asarray(metrics["began_convergence"])
      m = f"{convergence[:, :50].mean():.3f} -> {convergence[:, -100:].mean():.3f}"
    else:
      k = m = "-"
    described = ", ".join(f"{name} {value:g}" for name, value in options.items())
    lines.append(f"| {loss} | {described} | {common.spread(scores['modes_covered'], 1)} | "
                 f"{common.spread(scores['high_quality'], 2)} | {k} | {m} | "
                 f"{time.perf_counter() - start:.0f} |")
    print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
