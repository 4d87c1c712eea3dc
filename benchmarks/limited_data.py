"""With few training images, does augmenting D's inputs keep it from overfitting?

  python benchmarks/limited_data.py --train_source=zip:A.zip --reference_source=zip:B.zip \
      [--max_images=1000] [--num_steps=3000] [--every=1000] [--arms=none,diffaugment,ada] \
      [--image_size=32] [--width=32] [--batch_size=64] [--seed=0] [--root=/tmp/limited_data] \
      [--out=benchmarks/limited_data.md]

DiffAugment's and StyleGAN2-ADA's claim: a D trained on a few thousand images memorises
them, its feedback to G degrades and the samples get worse; augmenting every image D sees
(DiffAugment: always; ADA: with a probability raised while D looks overfitted, from its
mean sign on the reals r_t) prevents it. Each arm trains configs/dcgan.py (at
--image_size, G and D --width wide) on the first --max_images images of
--train_source, then its EMA generator's checkpoints are scored against images of
--reference_source (other faces: the distribution, not the training set) with the
offline metrics, as `python -m gan_jax.evaluate` scores them.

Arms (ARMS): none; diffaugment (color,translation,cutout at p = 1); ada (StyleGAN2-ADA's
pipeline, augment.policy=ada, p adapted towards r_t = 0.6 from 0, ada_kimg 100 so that
p can cross [0, 1] within a short run).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import dcgan  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import evaluate, train  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top,wrong-import-position

ARMS = {  # name -> config.augment overrides
    "none": {},
    "diffaugment": {"policy": "color,translation,cutout", "p": 1.0},
    "ada": {"policy": "ada", "p": 0.0, "ada_target": 0.6, "ada_kimg": 100.0},
}


def arm_config(arm: str, args):
  """configs/dcgan.py for `arm`: the limited training set, size, length and cadences."""
  config = dcgan.get_config()
  config.seed = args.seed
  config.data.update(source=args.train_source, max_images=args.max_images,
                     image_size=args.image_size)
  config.model.g_width = config.model.d_width = args.width
  config.train.update(num_steps=args.num_steps, batch_size=args.batch_size)
  config.checkpoint.update(every=args.every, keep=0)
  config.log.every = config.sample.every = args.every
  config.eval.every = 0
  config.augment.update(ARMS[arm])
  return config


def scores(workdir: str, args):
  """[(step, report)] of every checkpoint of `workdir` against the reference images: one
  evaluator, so the references are decoded and featurised once for all checkpoints."""
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), keep=0, async_save=False)
  try:
    steps = checkpointer.all_steps()
    config = evaluate.config_with_eval(checkpointer.restore_config(steps[-1]))
    config.data.source, config.data.max_images = args.reference_source, 0
    config.eval.update(metrics=args.metrics, num_samples=args.num_samples,
                       num_real=args.num_real)
    generator, abstract = evaluate.abstract_state(config)
    run_evaluator = evaluate.RunEvaluator(config, generator, os.path.join(workdir, "reference"))
    return [(step, run_evaluator(step, checkpointer.restore(abstract, step)[0])[0])
            for step in steps]
  finally:
    checkpointer.close()


def last_metrics(workdir: str) -> dict:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return json.loads(f.read().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--train_source", required=True)
  parser.add_argument("--reference_source", required=True)
  parser.add_argument("--max_images", type=int, default=1000)
  parser.add_argument("--num_steps", type=int, default=3000)
  parser.add_argument("--every", type=int, default=1000)
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--width", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--arms", default=",".join(ARMS))
  parser.add_argument("--metrics", default="fd_anime,kid_anime,duplicates")
  parser.add_argument("--values", default="fd_anime,kid_anime,dup_rate,diversity_ratio",
                      help="the metrics' values shown")
  parser.add_argument("--num_samples", type=int, default=1000)
  parser.add_argument("--num_real", type=int, default=5000)
  parser.add_argument("--root", default="/tmp/limited_data")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  arms = [arm for arm in args.arms.split(",") if arm]
  for arm in arms:
    if arm not in ARMS:
      raise SystemExit(f"--arms: unknown arm {arm!r}; choose from: {', '.join(ARMS)}")
  names, shown = args.metrics.split(","), args.values.split(",")
  lines = [f"# Limited data: {args.max_images} training images ({common.run_stamp()})", "",
           f"Command: `python benchmarks/limited_data.py {' '.join(sys.argv[1:])}`", "",
           "| arm | step | " + " | ".join(names) + " | augment_p, ada_r at the end |",
           "|---|---|" + "---|" * (len(names) + 1)]
  for arm in arms:
    workdir = os.path.join(args.root, arm)
    train.train_and_evaluate(arm_config(arm, args), workdir)
    end = last_metrics(workdir)
    ada = (f"{end['augment_p']:.3f}, {end['ada_r']:.3f}" if "augment_p" in end else "")
    for step, report in scores(workdir, args):
      cells = [", ".join(f"{k} {v:.4g}" for k, v in report[m]["values"].items()
                         if k in shown) for m in names]
      lines.append(f"| {arm} | {step} | " + " | ".join(cells) + f" | {ada} |")
      print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
