"""Every loss x constraint x penalty on the toy ring, each run from the command line.

  python benchmarks/toy_sweep.py --steps=2000 --out=benchmarks/toy_sweep.md

Runs `launch.py --config=configs/toy_ring.py` once per combination (12 losses x
4 constraints x 5 penalty choices = 240 runs; one seed, the config's defaults
otherwise) and writes a markdown table of modes covered (of 8) and the
high-quality fraction at the last step, or the error a run stopped with.
"""

import argparse
import concurrent.futures
import datetime
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from gan_jax import losses  # pylint: disable=g-import-not-at-top,wrong-import-position

CONSTRAINTS = {  # column group -> flags
    "none": [],
    "weight_clip": ["--config.constraint.d=weight_clip"],
    "sn_projection": ["--config.constraint.d=spectral_norm_projection"],
    "sn_layer": ["--config.model.d_spectral_norm=True"],
}
PENALTIES = ["", "wgan_gp", "dragan", "r1", "r2"]


def run_one(loss, constraint, penalty, steps, root):
  """(loss, constraint, penalty, cell text, seconds) of one command-line run."""
  workdir = os.path.join(root, f"{loss}-{constraint}-{penalty or 'none'}")
  flags = ["--config=configs/toy_ring.py", f"--workdir={workdir}",
           f"--config.loss.name={loss}", f"--config.penalty.use={penalty}",
           f"--config.train.num_steps={steps}", f"--config.log.every={steps}",
           f"--config.sample.every={steps}", f"--config.checkpoint.every={steps}",
           *CONSTRAINTS[constraint]]
  start = time.time()
  result = subprocess.run([sys.executable, "launch.py", *flags], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  seconds = time.time() - start
  if result.returncode != 0:
    last = (result.stderr.strip().splitlines() or ["?"])[-1].removeprefix("error: ")
    return loss, constraint, penalty, f"stopped: {last.split(';')[0][:60]}", seconds
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    row = json.loads(f.read().splitlines()[-1])
  return (loss, constraint, penalty,
          f"{row['toy/modes_covered']:.0f} / {row['toy/high_quality']:.2f}", seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--workers", type=int, default=1)
  parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "toy_sweep.md"))
  args = parser.parse_args()
  combos = list(itertools.product(losses.LOSSES.names(), CONSTRAINTS, PENALTIES))
  cells, total = {}, time.time()
  with tempfile.TemporaryDirectory() as root, \
      concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
    for i, (loss, constraint, penalty, cell, seconds) in enumerate(pool.map(
        lambda c: run_one(*c, args.steps, root), combos)):
      cells[loss, constraint, penalty] = cell
      print(f"[{i + 1}/{len(combos)}] {loss} {constraint} {penalty or 'none'}: {cell} "
            f"({seconds:.0f}s)", flush=True)
  lines = [
      "# Every loss x constraint x penalty on the toy ring, from the command line",
      "",
      f"Command: `python benchmarks/toy_sweep.py --steps={args.steps} --workers={args.workers}` "
      f"({datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPU cores, "
      f"{(time.time() - total) / 60:.0f} min).",
      "",
      f"Each cell is one `launch.py --config=configs/toy_ring.py` run of {args.steps} "
      "iterations (seed 0, the config's defaults otherwise: MLP 3x128, Adam 1e-3 betas "
      "(0, 0.9), batch 256, G-EMA 0.99, penalty weight 10, clip 0.01) and reads "
      "`modes covered (of 8) / high-quality fraction` of 2,500 EMA samples at the last "
      "step (PacGAN's protocol, gan_jax/data/toy.py). Constraints act on D only.",
      ""]
  for constraint in CONSTRAINTS:
    lines += [f"## D constraint: {constraint}", "",
              "| loss | " + " | ".join(p or "no penalty" for p in PENALTIES) + " |",
              "|---|" + "---|" * len(PENALTIES)]
    for loss in losses.LOSSES.names():
      lines.append(f"| {loss} | " + " | ".join(cells[loss, constraint, p] for p in PENALTIES)
                   + " |")
    lines.append("")
  with open(args.out, "w") as f:
    f.write("\n".join(lines))
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
