"""Architectures side by side: the same data and the same wall-clock budget for each config.

  python benchmarks/architectures.py --minutes=2 \\
      --configs=configs/dcgan.py,configs/sngan_resnet.py,configs/stylegan2.py \\
      --source=zip:../shared/data/anime-faces/faces64-000.zip --root=workdirs/arch

Each config trains with `launch.py` in a fresh process for `--minutes` of
training loop (train.max_minutes: compilation and data loading excluded;
logging, diagnostics and sample grids included) into ROOT/<config name>, then
`python -m gan_jax.evaluate` scores its final checkpoint (EMA generator) with
`--metrics`. An evaluation runs in the background while the next config trains
(it uses the GPU for seconds; AFD uses the CPU cores), so its cost does not eat
the next run's budget. Prints one JSON row per config and, at the end, a
markdown table (also appended to `--out` as JSON lines).
"""

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

import common  # benchmarks/common.py (config_overrides); importing it initialises no device

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIGS = flags.DEFINE_list(
    "configs", ["configs/dcgan.py", "configs/sngan_resnet.py", "configs/stylegan2.py"],
    "Config files to compare (each may carry a :preset).")
_MINUTES = flags.DEFINE_float("minutes", 2.0, "Training-loop minutes per config.")
_SOURCE = flags.DEFINE_string("source", "", "config.data.source for every run ('': each config's).")
_ROOT = flags.DEFINE_string("root", "workdirs/architectures", "Workdirs go in ROOT/<name>.")
_METRICS = flags.DEFINE_string("metrics", "fd_anime,kid_anime,tags,afd,duplicates,memorisation",
                               "Evaluation metrics of the final checkpoint.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 2048, "Samples scored per run.")
_AFD_NUM = flags.DEFINE_integer("afd_num", 1024, "Of which run through the face detector.")
_EXTRA_METRICS = flags.DEFINE_list(
    "extra_metrics", [], "NAME=M1+M2: metrics added for the config named NAME only "
    "(e.g. anime_tags=tag_hit_rate for a conditional run).")
_OVERRIDES = flags.DEFINE_list(
    "overrides", [], "Extra --config.X=V flags for every run, comma-separated; a value with "
    "commas stays whole (penalty.use=cr,cr_fake: a piece without '=' continues the value).")
_OUT = flags.DEFINE_string("out", "", "Append the rows to this JSONL file.")

_COLUMNS = ("config", "steps", "images_per_sec", "fd_anime", "kid_anime", "afd", "dup_rate",
            "dup_rate_real", "diversity_ratio", "copy_rate", "tags_tv", "hit_both")


def _name(config: str) -> str:
  base, _, preset = config.partition(":")
  name = os.path.splitext(os.path.basename(base))[0]
  return f"{name}_{preset}" if preset else name


def _env(memory_fraction: float) -> dict:
  env = dict(os.environ)
  env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = str(memory_fraction)
  env["PYTHONUNBUFFERED"] = "1"
  return env


def train_command(config: str, workdir: str) -> list:
  """launch.py for one config under the shared budget and data."""
  flags_ = [f"--config={config}", f"--workdir={workdir}",
            f"--config.train.max_minutes={_MINUTES.value}",
            "--config.train.num_steps=100000000",
            "--config.eval.every=0",
            "--config.checkpoint.every=100000000",  # one save, at the end
            f"--config.eval.num_samples={_NUM_SAMPLES.value}",
            f"--config.eval.afd_num={_AFD_NUM.value}"]
  if _SOURCE.value:
    flags_.append(f"--config.data.source={_SOURCE.value}")
  flags_ += [f"--config.{o}" for o in common.config_overrides(_OVERRIDES.value)]
  return [sys.executable, os.path.join(REPO, "launch.py")] + flags_


def eval_command(workdir: str, name: str) -> list:
  """gan_jax.evaluate on the run's latest checkpoint with --metrics (and its extra ones)."""
  extra = dict(item.split("=", 1) for item in _EXTRA_METRICS.value)
  metrics = _METRICS.value + ("," + extra[name].replace("+", ",") if name in extra else "")
  return [sys.executable, "-m", "gan_jax.evaluate", f"--workdir={workdir}", "--step=latest",
          f"--metrics={metrics}"]


def summarise(config: str, workdir: str, train_s: float) -> dict:
  """One row: how far the run got and what its final checkpoint scores."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  last = rows[-1]
  step = int(last["step"])
  with open(os.path.join(workdir, "checkpoints", str(step), "config", "metadata")) as f:
    saved = json.load(f)  # the config Orbax saved with the checkpoint (JsonSave)
  with open(os.path.join(workdir, "eval", f"step_{step}.json")) as f:
    report = json.load(f)
  values = {k: v for entry in report["metrics"].values() for k, v in entry["values"].items()}
  return {
      "config": _name(config),
      "minutes": _MINUTES.value,
      "steps": step,
      "batch_size": saved["train"]["batch_size"],
      "d_steps": saved["train"]["d_steps"],
      "images_per_sec": round(step * saved["train"]["batch_size"] / (60 * _MINUTES.value), 1),
      "process_seconds": round(train_s, 1),
      "fd_anime": values.get("fd_anime"),
      "kid_anime": values.get("kid_anime"),
      "afd": values.get("afd"),
      "dup_rate": values.get("dup_rate"),
      "dup_rate_real": values.get("dup_rate_real"),
      "diversity_ratio": values.get("diversity_ratio"),
      "copy_rate": values.get("mem/copy_rate_pixels"),
      "tags_tv": values.get("tags/hair_color_tv"),
      "hit_both": values.get("hit/both"),
      "all": values,
  }


def _fmt(value) -> str:
  if isinstance(value, float):
    return f"{value:.3g}"
  return "-" if value is None else str(value)


def main(argv):
  del argv
  os.makedirs(_ROOT.value, exist_ok=True)
  pending = []  # (config, workdir, train seconds, eval process)
  rows = []

  def finish(item):
    config, workdir, train_s, process = item
    if process.wait() != 0:
      print(f"evaluation of {workdir} failed (exit {process.returncode})", flush=True)
      return
    row = summarise(config, workdir, train_s)
    rows.append(row)
    print(json.dumps(row), flush=True)
    if _OUT.value:
      with open(_OUT.value, "a") as f:
        f.write(json.dumps(row) + "\n")

  for config in _CONFIGS.value:
    workdir = os.path.join(os.path.abspath(_ROOT.value), _name(config))
    start = time.perf_counter()
    with open(os.path.join(_ROOT.value, _name(config) + "_train.log"), "w") as log:
      code = subprocess.call(train_command(config, workdir), cwd=REPO, env=_env(0.7),
                             stdout=log, stderr=subprocess.STDOUT)
    train_s = time.perf_counter() - start
    print(f"{config}: training exited {code} after {train_s:.0f} s", flush=True)
    if code != 0:
      continue
    log = open(os.path.join(_ROOT.value, _name(config) + "_eval.log"), "w")  # pylint: disable=consider-using-with
    pending.append((config, workdir, train_s, subprocess.Popen(
        eval_command(workdir, _name(config)), cwd=REPO, env=_env(0.2), stdout=log, stderr=subprocess.STDOUT)))
    while pending and pending[0][3].poll() is not None:
      finish(pending.pop(0))
  for item in pending:
    finish(item)
  print("| " + " | ".join(_COLUMNS) + " |")
  print("|" + "---|" * len(_COLUMNS))
  for row in rows:
    print("| " + " | ".join(_fmt(row.get(c)) for c in _COLUMNS) + " |")


if __name__ == "__main__":
  app.run(main)
