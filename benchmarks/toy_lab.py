"""Mode coverage on the toy mixtures: which regulariser lets a GAN find every mode, over seeds.

  python benchmarks/toy_lab.py --out=benchmarks/toy_lab_results.md

Trains configs/toy_ring.py (and toy_grid.py) with the non-saturating loss and
one regulariser at a time, all seeds at once (gan_jax.lab.train_seeds: the
computation launch.py runs, vmapped over seeds), and writes a markdown table of
modes covered and the high-quality fraction (PacGAN's protocol, 2,500 EMA
samples) as mean +/- std and min over seeds.
"""

import argparse
import datetime
import os
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import toy_grid, toy_ring  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import data as data_lib, lab  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.data import toy  # pylint: disable=g-import-not-at-top,wrong-import-position

REGULARISERS = {  # name -> config overrides (section, key, value)
    "none": [],
    "SN layers in D": [("model", "d_spectral_norm", True)],
    "SN projection of D": [("constraint", "d", "spectral_norm_projection")],
    "WGAN-GP, weight 1": [("penalty", "use", "wgan_gp"), ("penalty.wgan_gp", "weight", 1.0)],
    "WGAN-GP, weight 10": [("penalty", "use", "wgan_gp")],
    "DRAGAN, weight 1": [("penalty", "use", "dragan"), ("penalty.dragan", "weight", 1.0)],
    "R1, weight 0.1": [("penalty", "use", "r1"), ("penalty.r1", "weight", 0.1)],
    "weight clip 0.01": [("constraint", "d", "weight_clip")],
}


def configure(module, overrides, ema_decay):
  config = module.get_config()
  config.ema.decay = ema_decay
  for section, key, value in overrides:
    node = config
    for part in section.split("."):
      node = node[part]
    node[key] = value
  return config


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--ring_steps", type=int, default=2000)
  parser.add_argument("--grid_steps", type=int, default=4000)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "toy_lab_results.md"))
  args = parser.parse_args()
  seeds = list(range(args.seeds))
  lines = [
      "# Toy lab: mode coverage by regulariser",
      "",
      f"Command: `python benchmarks/toy_lab.py --seeds={args.seeds} --ring_steps={args.ring_steps} "
      f"--grid_steps={args.grid_steps}` ({datetime.date.today()}, {platform.node()}, "
      f"{os.cpu_count()} CPU cores, JAX {jax.__version__}, {jax.devices()[0].platform}).",
      "",
      "Non-saturating loss, MLP 3x128 G and D, Adam 1e-3 betas (0, 0.9), batch 256, one D "
      "step per G step (configs/toy_ring.py). Cells: modes covered mean +/- std (min) / "
      "high-quality fraction mean +/- std over seeds 0.."
      f"{args.seeds - 1}, from 2,500 samples of the generator EMA (decay 0.99) or of G itself "
      "(decay 0).",
      ""]
  for module, steps, modes in ((toy_ring, args.ring_steps, 8), (toy_grid, args.grid_steps, 25)):
    lines += [f"## {module.get_config().data.source}, {steps} iterations ({modes} modes)", "",
              "| regulariser | G-EMA 0.99 | G itself | seconds |", "|---|---|---|---|"]
    for name, overrides in REGULARISERS.items():
      start = time.time()
      config = configure(module, overrides, 0.99)
      states, _ = lab.train_seeds(config, seeds, steps)
      cells = []
      for ema in (True, False):
        samples = lab.generate_seeds(config, states, 2500, ema=ema)
        rows = [toy.mode_metrics(s, data_lib.toy_mixture(config.data)) for s in samples]
        covered = np.array([r["modes_covered"] for r in rows])
        quality = np.array([r["high_quality"] for r in rows])
        cells.append(f"{covered.mean():.1f} +/- {covered.std():.1f} ({covered.min():.0f}) / "
                     f"{quality.mean():.2f} +/- {quality.std():.2f}")
      seconds = time.time() - start
      lines.append(f"| {name} | {cells[0]} | {cells[1]} | {seconds:.0f} |")
      print(lines[-1], flush=True)
    lines.append("")
  with open(args.out, "w") as f:
    f.write("\n".join(lines))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
