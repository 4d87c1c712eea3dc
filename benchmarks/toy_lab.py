"""Mode coverage on the toy mixtures: which regulariser lets a GAN find every mode, over seeds.

  python benchmarks/toy_lab.py --out=benchmarks/toy_lab_results.md

Trains configs/toy_ring.py (and toy_grid.py) with the non-saturating loss and
one regulariser at a time, all seeds at once (gan_jax.lab.train_seeds: the
computation launch.py runs, vmapped over seeds), and writes a markdown table of
modes covered and the high-quality fraction (PacGAN's protocol, 2,500 EMA
samples) as mean +/- std and min over seeds.
"""

import argparse
import os
import shlex
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import toy_grid, toy_ring  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import lab  # pylint: disable=g-import-not-at-top,wrong-import-position


def _zero_centred(weight, r2=False, relativistic=False):
  """Overrides for R1 (and R2) of `weight`, with the RpGAN loss when `relativistic`."""
  loss = [("loss", "name", "relativistic")] if relativistic else []
  use = "r1,r2" if r2 else "r1"
  return loss + [("penalty", "use", use)] + [
      (f"penalty.{name}", "weight", weight) for name in use.split(",")]


REGULARISERS = {  # name -> config overrides (section, key, value)
    "none": [],
    "SN layers in D": [("model", "d_spectral_norm", True)],
    "SN projection of D": [("constraint", "d", "spectral_norm_projection")],
    "WGAN-GP, weight 1": [("penalty", "use", "wgan_gp"), ("penalty.wgan_gp", "weight", 1.0)],
    "WGAN-GP, weight 10": [("penalty", "use", "wgan_gp")],
    "DRAGAN, weight 1": [("penalty", "use", "dragan"), ("penalty.dragan", "weight", 1.0)],
    "R1, weight 0.1": _zero_centred(0.1),
    "R1 + R2, weight 0.1 each": _zero_centred(0.1, r2=True),
    "RpGAN loss, R1 weight 0.1": _zero_centred(0.1, relativistic=True),
    "RpGAN loss, R1 + R2 weight 0.1 each (R3GAN's objective)": _zero_centred(
        0.1, r2=True, relativistic=True),
    "RpGAN loss, R1 + R2 weight 1 each": _zero_centred(1.0, r2=True, relativistic=True),
    # gamma against the grid's 0.05-wide modes (benchmarks/README.md, R3GAN on the toys)
    "R1, weight 0.01": _zero_centred(0.01),
    "R1, weight 0.001": _zero_centred(0.001),
    "RpGAN loss, R1 + R2 weight 0.01 each": _zero_centred(0.01, r2=True, relativistic=True),
    "RpGAN loss, R1 + R2 weight 0.001 each": _zero_centred(0.001, r2=True, relativistic=True),
    "weight clip 0.01": [("constraint", "d", "weight_clip")],
    "WGAN-GP recipe: Wasserstein loss, GP 10, 5 critic steps, Adam 1e-4": [
        ("loss", "name", "wasserstein"), ("penalty", "use", "wgan_gp"), ("train", "d_steps", 5),
        ("optim", "g_lr", 1e-4), ("optim", "d_lr", 1e-4)],
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


def _spread(values) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.3g} +/- {values.std():.2g} (min {values.min():.3g}, max {values.max():.3g})"


def theory(num_seeds):
  """Markdown lines: the lectures' claims measured as in tests/test_toy_lab.py."""
  seeds = list(range(num_seeds))
  lines = [f"## The claims of tests/test_toy_lab.py, seeds 0..{num_seeds - 1}", "",
           "| experiment | measured |", "|---|---|"]
  critic = toy_ring.get_config()
  critic.loss.name = "wasserstein"
  variants = {"no constraint": [], "weight clip 0.01": [("constraint", "d", "weight_clip")],
              "WGAN-GP 10": [("penalty", "use", "wgan_gp")],
              "SN layers": [("model", "d_spectral_norm", True)],
              "SN projection": [("constraint", "d", "spectral_norm_projection")]}
  for name, overrides in variants.items():
    config = configure(toy_ring, overrides + [("loss", "name", "wasserstein")], 0.99)
    history = lab.critic_history(config, seeds, record_at=(200, 400, 800))
    lines.append(f"| Wasserstein critic, {name}, G frozen: Lipschitz after 200 / 400 / 800 "
                 f"updates | {' / '.join(_spread(h[:, 0]) for h in history)} |")
    print(lines[-1], flush=True)
  base = toy_ring.get_config()
  base.train.batch_size = 1024
  gap = lab.optimum_gap(base, seeds, num_steps=2000)
  lines.append("| minimax D, 2,000 updates vs frozen G = N(1.5, 0.5^2), data N(0, 1): "
               f"mean abs(D - D*) | {_spread(gap[:, 0])} |")
  lines.append(f"| ... max abs(D - D*) where both densities > 0.02 | {_spread(gap[:, 1])} |")
  lines.append(f"| ... V(G, D) vs -2 log 2 + 2 JSD = {gap[0, 3]:.4f} | {_spread(gap[:, 2])} |")
  print("\n".join(lines[-3:]), flush=True)
  base.train.batch_size = 128
  rows = lab.disjoint_supports(base, seeds, thetas=(4.0, 1.0, 0.25))
  for row in rows:
    theta = row[0, 0]
    lines.append(f"| data N(0, 0.02^2) vs G N({theta:g}, 0.02^2): JSD estimate (log 2 = 0.6931) "
                 f"/ W1 estimate / minimax grad / non-saturating grad | {_spread(row[:, 1])} / "
                 f"{_spread(row[:, 2])} / {_spread(row[:, 3])} / {_spread(row[:, 4])} |")
    print(lines[-1], flush=True)
  return lines + [""]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--ring_steps", type=int, default=2000)
  parser.add_argument("--grid_steps", type=int, default=4000)
  parser.add_argument("--grid_seeds", type=int, default=5)
  parser.add_argument("--theory_seeds", type=int, default=5, help="0: skip the claims")
  parser.add_argument("--only", default="",
                      help="comma-separated pieces of regulariser names: only the rows whose "
                      "name contains one ('': all)")
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "toy_lab_results.md"))
  args = parser.parse_args()
  lines = [
      "# Toy lab: mode coverage by regulariser",
      "",
      f"Command: `python benchmarks/toy_lab.py --seeds={args.seeds} --ring_steps={args.ring_steps} "
      f"--grid_steps={args.grid_steps} --grid_seeds={args.grid_seeds} "
      f"--theory_seeds={args.theory_seeds}"
      + (" " + shlex.quote(f"--only={args.only}") if args.only else "")
      + f"` ({common.run_stamp()}).",
      "",
      "Non-saturating loss unless the row says otherwise, MLP 3x128 G and D, Adam 1e-3 betas (0, 0.9), batch 256, one D "
      "step per G step (configs/toy_ring.py). Cells: modes covered mean +/- std (min) / "
      "high-quality fraction mean +/- std over seeds, from 2,500 samples of the generator "
      "EMA (decay 0.99) or of G itself.",
      ""]
  if args.theory_seeds:
    lines += theory(args.theory_seeds)
  pieces = [piece for piece in args.only.split(",") if piece]
  rows = {name: overrides for name, overrides in REGULARISERS.items()
          if not pieces or any(piece in name for piece in pieces)}
  if not rows:
    raise SystemExit(f"--only={args.only!r} matches no regulariser; names: "
                     + "; ".join(REGULARISERS))
  for module, steps, num_seeds in ((toy_ring, args.ring_steps, args.seeds),
                                   (toy_grid, args.grid_steps, args.grid_seeds)):
    seeds = list(range(num_seeds))
    lines += [f"## {module.get_config().data.source}, {steps} iterations, seeds 0..{num_seeds - 1}",
              "",
              "| regulariser | G-EMA 0.99 | G itself | seconds |", "|---|---|---|---|"]
    for name, overrides in rows.items():
      start = time.time()
      config = configure(module, overrides, 0.99)
      states, _ = lab.train_seeds(config, seeds, steps)
      cells = []
      for ema in (True, False):
        scores = lab.mode_metrics_seeds(config, states, 2500, ema=ema)
        covered, quality = scores["modes_covered"], scores["high_quality"]
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
