"""GANs on discrete tokens: how each way of passing G's tokens to D trains, on the toy language.

  python benchmarks/text_lab.py --out=benchmarks/text_lab.md
  python benchmarks/text_lab.py --generators=factorised,autoregressive --pretrain_steps=0,500 \
      --steps=0,2000,6000 --estimators=reinforce,straight_through \
      --out=benchmarks/text_lab_pretraining.md
  python benchmarks/text_lab.py --generators=autoregressive --pretrain_steps=500 \
      --d_pretrain_steps=0,200 --steps=2000 --estimators=reinforce,straight_through \
      --out=benchmarks/text_lab_d_pretraining.md
  python benchmarks/text_lab.py --generators=autoregressive --rewards=sequence,dense \
      --d_l2=0,1e-4,1e-3 --steps=2000 --estimators=reinforce,straight_through \
      --out=benchmarks/text_lab_scratch.md
  python benchmarks/text_lab.py --generators=autoregressive --rewards=dense --d_l2=1e-3 \
      --baselines=batch,moving_average --baseline_decays=0.9,0.99 --steps=2000 \
      --estimators=reinforce --out=benchmarks/text_lab_baseline.md

Trains gan_jax/text_lab.py's token GAN with every generator, G and D pretraining length,
kind of rewards, D penalty, REINFORCE baseline and estimator on every seed (vmapped) and
writes a markdown table: the fraction of G's samples that are words of the language, the
words it covers (>= 1% of 2,000 samples), the largest G gradient norm seen and D's
accuracy over the last 100 iterations. A row of 0 GAN iterations is G as pretraining left
it (or untrained), whatever the estimator.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import text_lab  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.registry import check_choice  # pylint: disable=g-import-not-at-top,wrong-import-position


def baseline_cell(variant, estimator: str) -> str:
  """The table's baseline column: '-' where no REINFORCE runs."""
  if estimator != "reinforce":
    return "-"
  if variant["baseline"] == "moving_average":
    return f"moving average {variant['baseline_decay']:g}"
  return variant["baseline"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--steps", default="2000,6000", help="comma-separated iteration counts")
  parser.add_argument("--estimators", default=",".join(text_lab.ESTIMATORS))
  parser.add_argument("--generators", default="factorised",
                      help="comma-separated: " + ", ".join(text_lab.GENERATORS))
  parser.add_argument("--pretrain_steps", default="0",
                      help="comma-separated maximum-likelihood iterations before the GAN")
  parser.add_argument("--d_pretrain_steps", default="0",
                      help="comma-separated D iterations against the pretrained G before the GAN")
  parser.add_argument("--rewards", default="sequence",
                      help="comma-separated: " + ", ".join(text_lab.REWARDS))
  parser.add_argument("--discount", type=float, default=text_lab.Settings().discount,
                      help="dense rewards: the return's discount")
  parser.add_argument("--d_l2", default="0", help="comma-separated L2 penalty weights on D")
  parser.add_argument("--baselines", default="batch",
                      help="comma-separated REINFORCE baselines: " + ", ".join(text_lab.BASELINES))
  parser.add_argument("--baseline_decays", default=str(text_lab.Settings().baseline_decay),
                      help="comma-separated decays of the moving-average baseline")
  parser.add_argument("--batch_size", type=int, default=text_lab.Settings().batch_size,
                      help="real and generated sequences per D and G update")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  seeds = list(range(args.seeds))
  settings = text_lab.Settings(batch_size=args.batch_size, discount=args.discount)
  words = text_lab.make_language(settings)
  generators, estimators = args.generators.split(","), args.estimators.split(",")
  pretrain_steps = [int(p) for p in args.pretrain_steps.split(",")]
  d_pretrain_steps = [int(p) for p in args.d_pretrain_steps.split(",")]
  rewards, d_l2s = args.rewards.split(","), [float(w) for w in args.d_l2.split(",")]
  step_counts = [int(s) for s in args.steps.split(",")]
  decays = [float(d) for d in args.baseline_decays.split(",")]
  baselines = [dict(baseline=b, baseline_decay=d) for b in args.baselines.split(",")
               for d in (decays if b == "moving_average" else decays[:1])]
  # Every choice is checked before the first run: the table is written only at the end.
  variants = [dict(generator=g, pretrain_steps=p, d_pretrain_steps=dp, rewards=r, d_l2=w, **b)
              for g in generators for p in pretrain_steps for dp in d_pretrain_steps
              for r in rewards for w in d_l2s for b in baselines]
  for variant in variants:
    text_lab.check_settings(settings._replace(**variant))
  for decay in decays:  # the batch baseline uses none, but a bad one is still a mistake
    text_lab.check_settings(settings._replace(baseline_decay=decay))
  for estimator in estimators:
    check_choice("estimator", estimator, text_lab.ESTIMATORS)
  if min(step_counts) < 0:
    raise ValueError(f"--steps must be >= 0, got {args.steps}")
  lines = [
      "# Toy lab: GANs on discrete tokens", "",
      f"Command: `python benchmarks/text_lab.py --seeds={args.seeds} --steps={args.steps} "
      f"--estimators={args.estimators} --generators={args.generators} "
      f"--pretrain_steps={args.pretrain_steps} --d_pretrain_steps={args.d_pretrain_steps} "
      f"--rewards={args.rewards} "
      f"--discount={args.discount:g} --d_l2={args.d_l2} --baselines={args.baselines} "
      f"--baseline_decays={args.baseline_decays} --batch_size={args.batch_size}` "
      f"({common.run_stamp()}).", "",
      f"The language: {settings.num_words} words of {settings.length} tokens over "
      f"{settings.vocab} (chance of a random sequence being a word: "
      f"{settings.num_words / settings.vocab ** settings.length:.5f}). G: MLP "
      f"{settings.depth}x{settings.width} from z of {settings.latent_dim}: factorised, to "
      "every position's logits at once; autoregressive, to position t's logits from z, the "
      "tokens before t and t. Pretraining: that many maximum-likelihood iterations of G "
      "alone on real words (same Adam), then a fresh optimizer state and an untrained D. "
      "D pretraining: then that many iterations of D alone on real words against that G's "
      "training-time output; the GAN continues from that D and its optimizer state. "
      "Rewards: sequence, D scores the whole sequence and every token of a REINFORCE sample "
      "gets log D(x); dense (ScratchGAN's), D scores every prefix and token t gets "
      f"sum_(s >= t) {settings.discount:g}^(s - t) log D_s(x), with a baseline per position. "
      "D L2: that weight times the sum of D's squared weights, added to D's loss. "
      "Baseline (REINFORCE only): the batch mean of the rewards, or a moving average over "
      "training with that decay (ScratchGAN's; iteration t uses the average of the "
      "iterations before it). "
      f"D: MLP {settings.depth}x{settings.width}; Adam {settings.lr:g} betas "
      f"{settings.betas}, batch {settings.batch_size}, one D and one G update per iteration, "
      f"Gumbel temperature {settings.temperature}. Valid: the fraction of 2,000 samples "
      "x ~ p(x | z) that are words; words: those generated >= 20 times; max |grad G|: the "
      "largest G gradient norm over training; D accuracy: last 100 iterations. Mean +/- std "
      f"(min) over seeds 0..{args.seeds - 1}.", "",
      "| generator | pretraining | D pretraining | rewards | D L2 | baseline | estimator | "
      "iterations | valid | words covered (of 16) | max abs(grad G) | D accuracy | seconds |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  print("\n".join(lines), flush=True)
  for variant in variants:
    run_settings = settings._replace(**variant)
    for steps in step_counts:
      for estimator in estimators[:1] if steps == 0 else estimators:
        start = time.perf_counter()
        states, metrics = text_lab.train_seeds(estimator, seeds, steps, run_settings)
        scores = [text_lab.language_metrics(t, words)
                  for t in text_lab.sample_tokens(states, settings=run_settings)]
        valid = [s["valid"] for s in scores]
        covered = [s["words_covered"] for s in scores]
        gan_cells = "- | -"
        if steps:
          accuracy = np.asarray(metrics["d_accuracy"])[:, -100:].mean(axis=1)
          gan_cells = (f"{float(np.max(metrics['g_grad_norm'])):.3g} | "
                       f"{common.spread(accuracy, 2)}")
        lines.append(f"| {variant['generator']} | {variant['pretrain_steps']} | "
                     f"{variant['d_pretrain_steps']} | {variant['rewards']} | {variant['d_l2']:g} | "
                     f"{baseline_cell(variant, estimator if steps else '')} | "
                     f"{estimator if steps else '-'} | {steps} | "
                     f"{common.spread(valid, 3)} | {common.spread(covered, 1)} | {gan_cells} | "
                     f"{time.perf_counter() - start:.0f} |")
        print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
