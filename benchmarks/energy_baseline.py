"""The lectures' energy-based view on the toy ring: D alone generates by x = argmax_x D(x),
trained against negatives its own search mines; "slow and hard" next to a GAN.

  python benchmarks/energy_baseline.py --out=benchmarks/energy_baseline.md

Trains, on every seed at once, configs/toy_ring.py's GAN (non-saturating, no
regulariser, G-EMA samples) and the discriminator of gan_jax/energy.py alone
with searches of several lengths, for the same iterations, and writes a
markdown table: PacGAN's modes covered and high-quality fraction, the modes
with mass within 10 std, training seconds (compilation included) and the
seconds to draw 2,500 samples per seed (compiled).
"""

import argparse
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import toy_ring  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import energy, lab  # pylint: disable=g-import-not-at-top,wrong-import-position



def _timed(fn):
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - start


def row(name, config, samples, train_s, sample_s) -> str:
  tight = lab.samples_mode_metrics(config, samples)
  wide = lab.samples_mode_metrics(config, samples, within_stds=10)
  return (f"| {name} | {common.spread(tight['modes_covered'], 1)} | {common.spread(tight['high_quality'], 2)} | "
          f"{common.spread(wide['modes_covered'], 1)} | {train_s:.0f} | {sample_s:.3f} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--searches", default="5,10,20,40", help="search lengths (steps)")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  seeds = list(range(args.seeds))
  config = toy_ring.get_config()
  default = energy.Search()
  lines = [
      "# Toy lab: the discriminator alone as a generator (energy-based view)", "",
      f"Command: `python benchmarks/energy_baseline.py --seeds={args.seeds} --steps={args.steps} "
      f"--searches={args.searches}` ({common.run_stamp()}).", "",
      f"configs/toy_ring.py, {args.steps} iterations of batch 256, seeds 0..{args.seeds - 1}, "
      "all seeds at once. GAN: non-saturating, no regulariser, MLP 3x128 G and D, Adam 1e-3 "
      "betas (0, 0.9), samples from the G-EMA. Energy: the same D trained alone "
      "(gan_jax/energy.py: non-saturating loss on reals vs searched negatives + 0.1 x the "
      f"logits' squares), search = K steps of x += {default.step_size:g} grad D + "
      f"{default.noise:g} N(0, I) from U[-{default.extent:g}, {default.extent:g}]^2; samples "
      "by the same search. Cells: mean +/- std (min) over seeds; seconds for all seeds "
      "together (training includes compilation; sampling is compiled, 2,500 per seed).", "",
      "| generator | modes covered (3 std) | high quality | modes with mass within 10 std | "
      "train s | sample s |",
      "|---|---|---|---|---|---|",
  ]
  print("\n".join(lines), flush=True)
  states, train_s = _timed(lambda: lab.train_seeds(config, seeds, num_steps=args.steps)[0])
  lab.generate_seeds(config, states)
  samples, sample_s = _timed(lambda: lab.generate_seeds(config, states))
  lines.append(row("GAN (G-EMA)", config, samples, train_s, sample_s))
  print(lines[-1], flush=True)
  for steps in (int(k) for k in args.searches.split(",")):
    search = energy.Search(steps=steps)
    states, train_s = _timed(
        lambda s=search: energy.train_seeds(config, seeds, num_steps=args.steps, search=s)[0])
    energy.generate_seeds(config, states, search=search)
    samples, sample_s = _timed(lambda s=search: energy.generate_seeds(config, states, search=s))
    lines.append(row(f"D alone, {steps}-step search", config, samples, train_s, sample_s))
    print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
