"""G proposes, D corrects on the toy ring: rejection sampling and Metropolis-Hastings with D.

  python benchmarks/rejection_toy.py --out=benchmarks/rejection_toy.md

Trains configs/toy_ring.py (non-saturating loss) without a regulariser and with SN layers
in D on every seed (vmapped, gan_jax/lab.py), then tunes each D against its frozen G-EMA
for more and more updates and, at each point, draws 2,500 G-EMA samples plainly and
through rejection with that D (gan_jax/rejection.py; log_m the maximum, or a quantile, of
10,000 burn-in logits; or DRS's shifted rule) and through Metropolis-Hastings chains of a
few lengths. Writes PacGAN's modes covered and high-quality fraction, the modes' imbalance
(total variation from equal shares) and the acceptance rate.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import toy_ring  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import lab  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.errors import UserError  # pylint: disable=g-import-not-at-top,wrong-import-position

DISCRIMINATORS = {"no regulariser": False, "SN layers in D": True}  # -> model.d_spectral_norm


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=2000, help="GAN iterations")
  parser.add_argument("--tune", default="0,1000,5000",
                      help="D updates against the frozen G-EMA at which to sample (cumulative)")
  parser.add_argument("--quantiles", default="1,0.999,0.99",
                      help="rejection: log_m's quantiles of the burn-in")
  parser.add_argument("--gammas", default="0.95,0.8",
                      help="rejection with DRS's shift: gamma's quantiles of the burn-in's F "
                      "(log_m their maximum; '' for none)")
  parser.add_argument("--mh_steps", default="10,100",
                      help="Metropolis-Hastings: proposals per chain ('' for none)")
  parser.add_argument("--mh_starts", default="generator,data",
                      help="Metropolis-Hastings: where chains start (a proposal, or a real "
                      "point as in MH-GAN)")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  seeds = list(range(args.seeds))
  tune = [int(t) for t in args.tune.split(",")]
  quantiles = [float(q) for q in args.quantiles.split(",")]
  mh_steps = [int(k) for k in args.mh_steps.split(",") if k]
  gammas = [float(g) for g in args.gammas.split(",") if g]
  corrections = ([(f"rejection, log_m quantile {q:g}", dict(log_m_quantile=q)) for q in quantiles]
                 + [(f"rejection, log_m maximum, gamma the {g:g} quantile of F",
                     dict(gamma_quantile=g)) for g in gammas]
                 + [(f"MH, {k} proposals" + (", from data" if where == "data" else ""),
                     dict(method="mh", steps=k, start=where))
                    for where in args.mh_starts.split(",") for k in mh_steps])
  if tune != sorted(tune):
    raise SystemExit(f"--tune must be ascending, got {args.tune}")
  lines = [
      "# Toy lab: G proposes, D corrects (rejection sampling, Metropolis-Hastings) on the ring",
      "",
      f"Command: `python benchmarks/rejection_toy.py --seeds={args.seeds} --steps={args.steps} "
      f"--tune={args.tune} --quantiles={args.quantiles} --gammas={args.gammas} "
      f"--mh_steps={args.mh_steps} --mh_starts={args.mh_starts}` "
      f"({common.run_stamp()}).", "",
      f"configs/toy_ring.py (non-saturating loss, MLP 3x128 G and D, Adam 1e-3 betas (0, 0.9), "
      f"batch 256), {args.steps} iterations, seeds 0..{args.seeds - 1}; then D alone trained "
      "against the frozen G-EMA (0.99) for the updates in the row, and 2,500 G-EMA samples "
      "from fresh latents drawn plainly and corrected with that D: by rejection (each kept "
      "with probability min(1, exp(logit - log_m)), log_m the given quantile of 10,000 "
      "burn-in proposals' logits; 1: their maximum, the paper's M; or with DRS's shift, "
      "kept with probability sigmoid(F(x) - gamma), F(x) = a - log(1 - exp(a - 1e-6)), a = "
      "min(logit - log_m, 0), gamma the given quantile of F over the burn-in), or as the "
      "last state of an independence Metropolis-Hastings chain per sample (moves accepted "
      "with probability min(1, exp(logit' - logit)), started at a proposal or, 'from data', "
      "at a fresh point of the mixture, a chain that takes none of its proposals "
      "restarting from its first for as many again). Cells: mean +/- std (min) over seeds "
      "of modes covered and high-quality fraction (PacGAN's protocol), mode imbalance (total "
      "variation between the modes' shares of high-quality samples and equal shares; 0.875 "
      "when one mode has them all), the acceptance rate (of proposals; MH: of moves) and "
      "the proposals of G each corrected sample cost (rejection: after the burn-in, in "
      "rounds of 25,000; MH from G: its start and its steps).", "",
      "| D | D tuned (updates) | correction | modes: plain -> corrected | high quality: plain "
      "-> corrected | imbalance: plain -> corrected | acceptance | proposals per sample | "
      "seconds |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  print("\n".join(lines), flush=True)
  for name, spectral_norm in DISCRIMINATORS.items():
    config = toy_ring.get_config()
    config.model.d_spectral_norm = spectral_norm
    start = time.perf_counter()
    states, _ = lab.train_seeds(config, seeds, num_steps=args.steps)
    tuned = 0
    for target in tune:
      states = lab.tune_against_ema(config, states, seeds, target - tuned)
      tuned = target
      for correction, options in corrections:
        try:
          rows = lab.rejection_rows(config, states, seeds, **options)
        except UserError as e:  # too few kept on some seed: say so, go on
          lines.append(f"| {name} | {target} | {correction} | did not finish: {e} | | | | | "
                       f"{time.perf_counter() - start:.0f} |")
        else:
          plain, kept = rows[:, 0], rows[:, 1]
          cells = [f"{common.spread(plain[:, c], digits)} -> {common.spread(kept[:, c], digits)}"
                   for c, digits in ((0, 1), (1, 2), (2, 2))]
          lines.append(f"| {name} | {target} | {correction} | {' | '.join(cells)} | "
                       f"{common.spread(kept[:, 3], 3)} | {common.spread(kept[:, 4], 1)} | "
                       f"{time.perf_counter() - start:.0f} |")
        print(lines[-1], flush=True)
        start = time.perf_counter()
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
