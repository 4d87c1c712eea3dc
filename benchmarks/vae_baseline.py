"""The lectures' VAE claim on the toy ring: a VAE puts samples between the modes, a GAN does
not; the VAE is the steadier of the two across learning rates. And their other
alternatives: a plain auto-encoder's decoder fed random codes, and the lectures' two
"supervised latent assignments": GLO (a code learned per training point) and GON
(gradient origin networks: the code is the gradient of the error at the origin).

  python benchmarks/vae_baseline.py --out=benchmarks/vae_baseline.md

For each learning rate, trains configs/toy_ring.py's non-saturating GAN (no
regulariser; samples from its G-EMA, as the toy lab reports) and the VAE of
gan_jax/vae.py (the same generator as decoder, the same batches and Adam
settings) and its plain auto-encoder (vae.py's autoencoder=True: no noise, no KL;
its decoder sampled from the same N(0, I) codes) and GLO (gan_jax/glo.py: the same
generator, a code per point of a fixed set, sampled from a Gaussian fitted to the codes;
at the table's iterations and at --glo_factor times as many) and GON (gan_jax/gon.py: the
same generator with ELU layers, its codes from the gradient at the origin, sampled as GLO)
on every seed, and writes a
markdown table: modes covered by PacGAN's
protocol (3 std), modes with mass near them (the same count within 10 std), and
the share of samples farther than 10 std (0.2) from every mode: between modes.
"""

import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import toy_ring  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import glo, gon, lab, plots, vae  # pylint: disable=g-import-not-at-top,wrong-import-position

WIDE = 10.0  # stds: "near a mode" for the coverage and between-mode columns



def scores(config, samples) -> dict:
  """{'pacgan', 'wide', 'between'} per seed of (seeds, num, 2) samples."""
  pacgan = lab.samples_mode_metrics(config, samples)
  wide = lab.samples_mode_metrics(config, samples, within_stds=WIDE)
  return {"pacgan": pacgan["modes_covered"], "wide": wide["modes_covered"],
          "between": 1.0 - wide["high_quality"]}


def row(name, lr, result, seconds) -> str:
  return (f"| {name} | {lr:g} | {common.spread(result['pacgan'], 1)} | {common.spread(result['wide'], 1)} | "
          f"{common.spread(result['between'], 2)} | {seconds:.0f} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--lrs", default="3e-4,1e-3,3e-3,1e-2")
  parser.add_argument("--likelihood_std", type=float, default=0.1)
  parser.add_argument("--glo_points", type=int, default=2048, help="GLO's training set size")
  parser.add_argument("--glo_factor", type=int, default=3,
                      help="GLO's second row trains this many times --steps")
  parser.add_argument("--out", default="")
  parser.add_argument("--plot", default="", help="PNG: seed 0's GAN | VAE | AE samples at --plot_lr")
  parser.add_argument("--plot_lr", type=float, default=1e-3)
  args = parser.parse_args()
  pictures = {}
  seeds = list(range(args.seeds))
  lines = [
      "# Toy lab: the VAE baseline against the GAN", "",
      f"Command: `python benchmarks/vae_baseline.py --seeds={args.seeds} --steps={args.steps} "
      f"--lrs={args.lrs} --likelihood_std={args.likelihood_std:g} --glo_points={args.glo_points} "
      f"--glo_factor={args.glo_factor}` ({common.run_stamp()}).", "",
      f"configs/toy_ring.py (8 Gaussians, radius 2, std 0.02), {args.steps} iterations of "
      "batch 256, seeds 0.."
      f"{args.seeds - 1}, 2,500 samples each. GAN: non-saturating, no regulariser, MLP 3x128 "
      "G and D, Adam (learning rate below for both networks, betas (0, 0.9)), samples from "
      "the G-EMA (0.99). VAE (gan_jax/vae.py): that G as decoder, an MLP 3x128 encoder, "
      f"decoder noise std {args.likelihood_std:g}, the same Adam. AE: the same encoder and "
      "decoder as a plain auto-encoder (code = the encoder's mean, no KL term), its decoder "
      "sampled from the same N(0, I) codes. GLO: that G with a code (16-D, on the unit "
      f"sphere) learned for each of {args.glo_points:,} points drawn once, batches of 256 of "
      "them, the same Adam for G and codes; sampled from the same N(0, I) draws mapped "
      "through the Gaussian fitted to the codes; its second row trains "
      f"{args.glo_factor}x as many iterations. GON: that G with ELU instead of ReLU layers "
      "(with ReLU every code is 0: gan_jax/gon.py), a fresh batch of 256 each iteration, "
      "each point's code minus the gradient of its squared error at z = 0, the same Adam; "
      "sampled as GLO, from a Gaussian fitted to the codes of 2,048 points. "
      "Cells: mean +/- std (min) over seeds.", "",
      f"| model | lr | modes covered (3 std) | modes with mass within {WIDE:g} std | "
      f"samples between modes (> {WIDE:g} std from all) | seconds |",
      "|---|---|---|---|---|---|",
  ]
  print("\n".join(lines), flush=True)
  for lr in (float(x) for x in args.lrs.split(",")):
    config = toy_ring.get_config()
    config.optim.g_lr = config.optim.d_lr = lr
    start = time.perf_counter()
    states, _ = lab.train_seeds(config, seeds, num_steps=args.steps)
    samples = lab.generate_seeds(config, states)
    result = scores(config, samples)
    pictures[("GAN", lr)] = samples[0]
    lines.append(row("GAN", lr, result, time.perf_counter() - start))
    print(lines[-1], flush=True)
    for name, autoencoder in (("VAE", False), ("AE", True)):
      start = time.perf_counter()
      states, _ = vae.train_seeds(config, seeds, num_steps=args.steps,
                                  likelihood_std=args.likelihood_std, autoencoder=autoencoder)
      samples = vae.generate_seeds(config, states)
      result = scores(config, samples)
      pictures[(name, lr)] = samples[0]
      lines.append(row(name, lr, result, time.perf_counter() - start))
      print(lines[-1], flush=True)
    for factor in (1, args.glo_factor):
      start = time.perf_counter()
      states, metrics = glo.train_seeds(config, seeds, num_steps=factor * args.steps,
                                        num_points=args.glo_points)
      samples = glo.generate_seeds(config, states)
      result = scores(config, samples)
      name = "GLO" if factor == 1 else f"GLO, {factor * args.steps:,} iterations"
      pictures[(name, lr)] = samples[0]
      rms = np.asarray(metrics["reconstruction"])[:, -50:].mean(axis=1)
      lines.append(row(f"{name} (fit RMS {rms.mean():.3f})", lr, result,
                       time.perf_counter() - start))
      print(lines[-1], flush=True)
    start = time.perf_counter()
    states, metrics = gon.train_seeds(config, seeds, num_steps=args.steps)
    samples = gon.generate_seeds(config, states)
    result = scores(config, samples)
    pictures[("GON", lr)] = samples[0]
    rms = np.asarray(metrics["reconstruction"])[:, -50:].mean(axis=1)
    lines.append(row(f"GON (fit RMS {rms.mean():.3f})", lr, result, time.perf_counter() - start))
    print(lines[-1], flush=True)
  if args.plot:
    mixture = data_lib.toy_mixture(toy_ring.get_config().data)
    panels = [plots.scatter(pictures[(name, args.plot_lr)], extent=3.0, centers=mixture.centers,
                            size=384) for name in ("GAN", "VAE", "AE", "GLO", "GON")]
    Image.fromarray(np.concatenate(panels, axis=1)).save(args.plot)
    lines += ["", f"`{os.path.basename(args.plot)}`: seed 0's 2,500 samples at lr "
              f"{args.plot_lr:g}, left to right: GAN, VAE, auto-encoder, GLO, GON ({args.steps:,} "
              "iterations); red crosses are the modes."]
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
