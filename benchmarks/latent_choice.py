"""The lectures on z: its distribution (Gaussian or uniform) "matters little", and its size
is a hyperparameter (5, 10, 50, 100). Measured on the toy ring.

  python benchmarks/latent_choice.py --out=benchmarks/latent_choice.md

Trains configs/toy_ring.py (non-saturating GAN, 2,000 iterations; without a regulariser
and with SN layers in D) for every latent distribution and size on every seed (vmapped,
gan_jax/lab.py), and writes a markdown table of PacGAN's modes covered and high-quality
fraction from 2,500 G-EMA samples.
"""

import argparse
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import toy_ring  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import lab  # pylint: disable=g-import-not-at-top,wrong-import-position

SETTINGS = {"no regulariser": False, "SN layers in D": True}  # -> model.d_spectral_norm



def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--dims", default="2,5,10,16,50,100")
  parser.add_argument("--dists", default="gaussian,uniform")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  seeds = list(range(args.seeds))
  lines = [
      "# Toy lab: the latent distribution and size", "",
      f"Command: `python benchmarks/latent_choice.py --seeds={args.seeds} --steps={args.steps} "
      f"--dims={args.dims} --dists={args.dists}` ({common.run_stamp()}).", "",
      "configs/toy_ring.py: non-saturating loss, MLP 3x128 G and D, Adam 1e-3 betas (0, 0.9), "
      f"batch 256, {args.steps} iterations, seeds 0..{args.seeds - 1}. z ~ N(0, I) (gaussian) "
      "or U(-1, 1) per coordinate (uniform). Cells: modes covered / high-quality fraction by "
      "PacGAN's protocol (2,500 G-EMA samples), mean +/- std (min) over seeds.", "",
      "| D | z | size | modes covered | high quality | seconds |",
      "|---|---|---|---|---|---|",
  ]
  print("\n".join(lines), flush=True)
  for setting, spectral_norm in SETTINGS.items():
    for dist in args.dists.split(","):
      for dim in (int(d) for d in args.dims.split(",")):
        config = toy_ring.get_config()
        config.model.d_spectral_norm = spectral_norm
        config.model.latent_dist, config.model.latent_dim = dist, dim
        start = time.perf_counter()
        states, _ = lab.train_seeds(config, seeds, num_steps=args.steps)
        scores = lab.mode_metrics_seeds(config, states)
        lines.append(f"| {setting} | {dist} | {dim} | {common.spread(scores['modes_covered'], 1)} | "
                     f"{common.spread(scores['high_quality'], 2)} | {time.perf_counter() - start:.0f} |")
        print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
