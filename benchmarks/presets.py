"""The classic recipes side by side on the anime faces: same data, same number of iterations.

  python benchmarks/presets.py --steps=1000 --image_size=32 --width=32 --batch_size=64

Runs `launch.py` for configs/dcgan.py (DCGAN), wgan.py, wgan_gp.py and sngan.py
with the same overrides, then writes benchmarks/presets_results.md (the last
logged metrics and D diagnostics of each) and benchmarks/presets_samples.png
(each run's final EMA sample grid, left to right in that order).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ["dcgan", "wgan", "wgan_gp", "sngan"]
COLUMNS = ["d_loss", "g_loss", "diag/w_estimate", "diag/d_accuracy", "diag/grad_norm_real_mean",
           "diag/grad_norm_interp_mean", "diag/grad_norm_fake_mean"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--width", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--workdir", default="")
  args = parser.parse_args()
  root = args.workdir or tempfile.mkdtemp(prefix="presets_")
  overrides = [f"--config.train.num_steps={args.steps}",
               f"--config.data.image_size={args.image_size}",
               f"--config.model.g_width={args.width}", f"--config.model.d_width={args.width}",
               f"--config.train.batch_size={args.batch_size}",
               f"--config.log.every={max(1, args.steps // 10)}",
               f"--config.sample.every={args.steps}", f"--config.checkpoint.every={args.steps}"]
  rows, grids = [], []
  for preset in PRESETS:
    workdir = os.path.join(root, preset)
    start = time.time()
    result = subprocess.run([sys.executable, "launch.py", f"--config=configs/{preset}.py",
                             f"--workdir={workdir}", *overrides], cwd=REPO,
                            capture_output=True, text=True)
    seconds = time.time() - start
    if result.returncode != 0:
      raise SystemExit(f"{preset} failed:\n{result.stderr[-3000:]}")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      last = json.loads(f.read().splitlines()[-1])
    sigmas = [v for k, v in last.items() if k.startswith("diag/sigma/")]
    rows.append([preset, f"{seconds:.0f}"] + [f"{last[c]:.3g}" for c in COLUMNS]
                + [f"{max(sigmas):.3g}"])
    grids.append(np.asarray(Image.open(os.path.join(workdir, "samples",
                                                    f"step_{args.steps:07d}.png"))))
    print(" | ".join(rows[-1]), flush=True)
  height = max(g.shape[0] for g in grids)
  gap = np.full((height, 8, 3), 255, np.uint8)
  picture = np.concatenate(sum([[np.pad(g, ((0, height - g.shape[0]), (0, 0), (0, 0)),
                                        constant_values=255), gap] for g in grids], [])[:-1], 1)
  Image.fromarray(picture).save(os.path.join(REPO, "benchmarks", "presets_samples.png"))
  lines = ["# The classic recipes side by side (`benchmarks/presets.py`)", "",
           f"Command: `python benchmarks/presets.py --steps={args.steps} "
           f"--image_size={args.image_size} --width={args.width} --batch_size={args.batch_size}` "
           f"({datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPU cores). Every run: "
           f"the anime faces at {args.image_size}x{args.image_size}, G/D width {args.width}, "
           f"batch {args.batch_size}, {args.steps} iterations, each preset's own loss, "
           "constraint, optimizer and D steps. Metrics are the last logged values; sigma max is "
           "the largest singular value over D's kernels (matrix view). Samples: "
           "`presets_samples.png`, left to right in the table's order.", "",
           "| preset | seconds | " + " | ".join(COLUMNS) + " | sigma max |",
           "|---" * (len(COLUMNS) + 3) + "|"]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  with open(os.path.join(REPO, "benchmarks", "presets_results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("wrote benchmarks/presets_results.md and benchmarks/presets_samples.png")


if __name__ == "__main__":
  main()
