"""Results over seeds, as distributions: python -m gan_jax.compare_runs.

  python -m gan_jax.compare_runs --runs='workdirs/hinge_s*,workdirs/ns_s*' \
      --metrics=eval/fd_anime,eval/kid_anime [--step=last|best|N] [--ignore=data.cache_dir] \
      [--out=results.md] [--json=r.json]

A GAN's result over seeds is a distribution, not a number (the lectures; "Are
GANs created equal?"): this command reads finished or running workdirs and
reports, for every experiment and metric, n, mean +- sample std, median, min and
max over its runs, with the value each run contributed.

Runs are grouped by their saved configs: runs whose configs differ only in
`seed` are one experiment repeated, and each group is named by the fields that
differ between groups (e.g. `loss.name=hinge`); `--ignore` names more fields
that do not make an experiment (a per-job cache path). A metric is any key of the runs'
metrics.jsonl: `eval/<value>` at evaluation steps, `toy/modes_covered` at sample
steps, the losses at log steps. `--step` picks each run's value: `last` (its last
row with the metric; default), a step N, or `best` (the best value of an
evaluation headline over the run's evaluations, as papers that select a
checkpoint report; optimistic). Each group after the first is also compared with
the first: the difference of means with Welch's 95% interval and two-sided p
(unequal variances; a handful of seeds gives wide intervals, which is the
point). Evaluation values carry their protocol
(eval/step_N.json); runs whose protocols differ (sample counts, reference
images, feature network) are flagged, since their numbers do not compare.
"""

import dataclasses
import glob
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gan_jax.errors import UserError

IGNORED = ("seed",)  # config fields that repeat an experiment rather than change it
# Protocol fields that name the run itself, not how its number was measured.
_RUN_PROTOCOL_FIELDS = ("generator", "step")


@dataclasses.dataclass
class Run:
  """A workdir's saved config (flattened: {'loss.name': 'hinge', ...}) and metrics rows."""
  workdir: str
  config: Dict[str, Any]
  rows: List[Dict[str, Any]]

  @property
  def seed(self) -> Any:
    """The run's config.seed."""
    return self.config.get("seed")


def flatten_config(config: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
  """{'loss': {'name': 'hinge'}} -> {'loss.name': 'hinge'} (lists kept as values)."""
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out.update(flatten_config(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def load_run(workdir: str) -> Run:
  """The Run of `workdir`: the config of its latest checkpoint and its metrics.jsonl rows."""
  from gan_jax import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    raise UserError(f"{workdir} is not a run's workdir (no checkpoints/ in it)")
  checkpointer = checkpoint_lib.Checkpointer(directory, keep=0, async_save=False)
  try:
    if checkpointer.latest_step() is None:
      raise UserError(f"{workdir} has no checkpoint yet: its config is saved with the first")
    config = checkpointer.restore_config()
  finally:
    checkpointer.close()
  rows = []
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if os.path.isfile(metrics_path):
    with open(metrics_path) as f:
      rows = [json.loads(line) for line in f if line.strip()]
  return Run(workdir, flatten_config(config), rows)


def find_runs(patterns: Sequence[str]) -> List[str]:
  """The workdirs the globs `patterns` name (sorted per pattern, each once); UserError for a
  pattern that matches nothing."""
  found = []
  for pattern in patterns:
    matches = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isdir(p))
    if not matches:
      raise UserError(f"--runs: {pattern!r} matches no folder")
    found += [m for m in matches if m not in found]
  return found


def group_runs(runs: Sequence[Run], ignore: Sequence[str] = ()
               ) -> Tuple[List[str], List[Tuple[str, List[Run]]]]:
  """(the config fields that vary between experiments, [(group name, its runs)]): runs whose
  configs agree on every field but `seed` (and the fields of `ignore`) form a group, named by
  its values of the varying fields ('all runs' when none vary), in order of first
  appearance."""
  keys = sorted({k for run in runs for k in run.config})
  varying = [k for k in keys if k not in IGNORED and k not in ignore
             and len({json.dumps(run.config.get(k, "<absent>")) for run in runs}) > 1]
  groups: Dict[Tuple[str, ...], List[Run]] = {}
  for run in runs:
    values = tuple(json.dumps(run.config.get(k, "<absent>")) for k in varying)
    groups.setdefault(values, []).append(run)
  named = []
  for values, members in groups.items():
    name = ", ".join(f"{k}={json.loads(v)}" for k, v in zip(varying, values)) or "all runs"
    named.append((name, members))
  return varying, named


def higher_is_better(key: str) -> Optional[bool]:
  """For an evaluation headline key (eval/fd_anime, eval/hit/both): whether higher is better;
  None for any other key."""
  from gan_jax.metrics import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  if not key.startswith("eval/"):
    return None
  for name in evaluator_lib.METRICS.names():
    metric = evaluator_lib.METRICS.get(name)
    if metric.headline == key[len("eval/"):]:
      return metric.higher_is_better
  return None


def run_value(run: Run, key: str, step: str = "last") -> Tuple[float, int]:
  """(value, step) of `key` in `run`'s metrics rows at `step` ('last', 'best' or a number);
  UserError naming what the run has when it has no such value."""
  rows = [row for row in run.rows if key in row]
  if not rows:
    keys = sorted({k for row in run.rows for k in row} - {"step"})
    raise UserError(f"{run.workdir} logged no {key!r} (its metrics: "
                    f"{', '.join(keys) or 'none yet'})")
  if step == "last":
    row = rows[-1]
  elif step == "best":
    higher = higher_is_better(key)
    if higher is None:
      raise UserError(f"--step=best ranks evaluation headlines (e.g. eval/fd_anime); {key!r} "
                      "is not one: use --step=last or a step number")
    finite = [r for r in rows if math.isfinite(r[key])]
    if not finite:
      raise UserError(f"{run.workdir}: every {key} is NaN or infinite")
    row = (max if higher else min)(finite, key=lambda r: r[key])
  else:
    try:
      wanted = int(step)
    except ValueError:
      raise UserError(f"--step must be last, best or a step number, got {step!r}") from None
    at = [r for r in rows if r["step"] == wanted]
    if not at:
      raise UserError(f"{run.workdir} has no {key} at step {wanted} (it has steps "
                      f"{', '.join(str(r['step']) for r in rows[-10:])})")
    row = at[-1]
  return float(row[key]), int(row["step"])


def eval_protocol(run: Run, key: str, step: int) -> Optional[Dict[str, Any]]:
  """The protocol eval/step_<step>.json records for the evaluation value `key` (eval/<value>),
  without the fields that name the run itself; None for other keys or a missing report."""
  if not key.startswith("eval/"):
    return None
  path = os.path.join(run.workdir, "eval", f"step_{step}.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    report = json.load(f)["metrics"]
  for entry in report.values():
    if key[len("eval/"):] in entry["values"]:
      return {k: v for k, v in entry["protocol"].items() if k not in _RUN_PROTOCOL_FIELDS}
  return None


def summarise(values: Sequence[float]) -> Dict[str, float]:
  """n, mean, std (sample std, n - 1 in the denominator; NaN for one run), median, min, max."""
  values = np.asarray(values, np.float64)
  return {"n": int(len(values)), "mean": float(values.mean()),
          "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
          "median": float(np.median(values)), "min": float(values.min()),
          "max": float(values.max())}


def welch_difference(first: Sequence[float], other: Sequence[float],
                     confidence: float = 0.95) -> Dict[str, float]:
  """{'difference': mean(other) - mean(first), 'low', 'high': Welch's `confidence` interval of
  it, 'p': the two-sided p-value of equal means}; the interval and p are NaN unless both
  groups have two or more runs."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  first, other = np.asarray(first, np.float64), np.asarray(other, np.float64)
  out = {"difference": float(other.mean() - first.mean()), "low": float("nan"),
         "high": float("nan"), "p": float("nan")}
  if len(first) > 1 and len(other) > 1 and (first.std() > 0 or other.std() > 0):
    result = stats.ttest_ind(other, first, equal_var=False)
    interval = result.confidence_interval(confidence)
    out.update(low=float(interval.low), high=float(interval.high), p=float(result.pvalue))
  return out


def compare_runs(workdirs: Sequence[str], metrics: Sequence[str], step: str = "last",
                 ignore: Sequence[str] = ()) -> Dict[str, Any]:
  """The comparison of `workdirs` on `metrics` (module docstring; `ignore`: config fields left
  out of the grouping besides seed) as JSON-ready data:
  {'varying', 'step', 'groups': [{'name', 'runs': [{'workdir', 'seed', 'values': {metric:
  [value, step]}}], 'stats': {metric: summarise(...)}}], 'differences': [{'name', 'versus',
  metric: welch_difference(...)}] (each later group against the first),
  'protocol_mismatches'}."""
  if not workdirs:
    raise UserError("--runs names no workdir")
  if not metrics:
    raise UserError("--metrics names no metric (e.g. eval/fd_anime or toy/modes_covered)")
  runs = [load_run(w) for w in workdirs]
  unknown = [k for k in ignore if not any(k in run.config for run in runs)]
  if unknown:
    raise UserError(f"--ignore: no run's config has {', '.join(unknown)} (fields are dotted, "
                    "e.g. data.cache_dir)")
  varying, groups = group_runs(runs, ignore)
  out_groups, protocols = [], {m: {} for m in metrics}
  for name, members in groups:
    rows = []
    for run in members:
      values = {}
      for metric in metrics:
        value, at = run_value(run, metric, step)
        values[metric] = [value, at]
        protocol = eval_protocol(run, metric, at)
        if protocol is not None:
          protocols[metric][run.workdir] = protocol
      rows.append({"workdir": run.workdir, "seed": run.seed, "values": values})
    stats = {m: summarise([r["values"][m][0] for r in rows]) for m in metrics}
    out_groups.append({"name": name, "runs": rows, "stats": stats})
  mismatches = []
  for metric, by_run in protocols.items():
    distinct = {json.dumps(p, sort_keys=True) for p in by_run.values()}
    if len(distinct) > 1:
      fields = sorted({k for p in by_run.values() for k in p
                       if len({json.dumps(q.get(k)) for q in by_run.values()}) > 1})
      mismatches.append({"metric": metric, "fields": fields,
                         "protocols": {w: {k: p.get(k) for k in fields}
                                       for w, p in by_run.items()}})
  differences = []
  if len(out_groups) > 1:
    first = out_groups[0]

    def values(group, metric):
      return [r["values"][metric][0] for r in group["runs"]]
    for group in out_groups[1:]:
      differences.append({"name": group["name"], "versus": first["name"], **{
          m: welch_difference(values(first, m), values(group, m)) for m in metrics}})
  return {"varying": varying, "step": step, "groups": out_groups, "differences": differences,
          "protocol_mismatches": mismatches}


def _number(x: float) -> str:
  return "nan" if not math.isfinite(x) else f"{x:.4g}"


def markdown(report: Dict[str, Any]) -> str:
  """The comparison as a markdown table (one row per group), each run's values and any
  protocol mismatch below it."""
  metrics = list(report["groups"][0]["stats"]) if report["groups"] else []
  at = {"last": "each run's last value",
        "best": "each run's best evaluation (optimistic: the checkpoint is chosen on the "
                "numbers it reports, so the best of several noisy evaluations is biased "
                "low for FD, high for a hit rate)"}.get(report["step"], f"step {report['step']}")
  lines = [f"Over seeds, at {at}; mean +- sample std (median, min-max).", "",
           "| experiment | runs | seeds | " + " | ".join(metrics) + " |",
           "|---|---|---|" + "---|" * len(metrics)]
  for group in report["groups"]:
    cells = []
    for metric in metrics:
      s = group["stats"][metric]
      spread = "" if s["n"] < 2 else f" +- {_number(s['std'])}"
      cells.append(f"{_number(s['mean'])}{spread} ({_number(s['median'])}, "
                   f"{_number(s['min'])}-{_number(s['max'])})")
    seeds = ", ".join(str(r["seed"]) for r in group["runs"])
    lines.append(f"| {group['name']} | {len(group['runs'])} | {seeds} | " + " | ".join(cells)
                 + " |")
  if report["differences"]:
    versus = report["differences"][0]["versus"]
    lines += ["", f"Difference from {versus} (the group's mean minus its; Welch's 95% "
              "interval, two-sided p):", "",
              "| experiment | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for difference in report["differences"]:
      cells = [f"{_number(d['difference'])} [{_number(d['low'])}, {_number(d['high'])}], "
               f"p {_number(d['p'])}" for d in (difference[m] for m in metrics)]
      lines.append(f"| {difference['name']} | " + " | ".join(cells) + " |")
  lines += ["", "Each run:", ""]
  for group in report["groups"]:
    for run in group["runs"]:
      values = ", ".join(f"{m} {_number(v)} (step {at})" for m, (v, at) in run["values"].items())
      lines.append(f"- {group['name']}, seed {run['seed']}: {values} [{run['workdir']}]")
  for mismatch in report["protocol_mismatches"]:
    lines += ["", f"WARNING: the runs measured {mismatch['metric']} under different protocols "
              f"(fields {', '.join(mismatch['fields'])}); those numbers do not compare:"]
    lines += [f"- {w}: {json.dumps(p, sort_keys=True)}" for w, p in mismatch["protocols"].items()]
  return "\n".join(lines) + "\n"


def main(argv):
  """The command line (absl flags)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from gan_jax import writers  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import run_command  # pylint: disable=g-import-not-at-top
  del argv
  f = flags.FLAGS
  writers.quiet_library_logs()

  def command():
    patterns = [p.strip() for p in f.runs.split(",") if p.strip()]
    metrics = [m.strip() for m in f.metrics.split(",") if m.strip()]
    ignore = [k.strip() for k in f.ignore.split(",") if k.strip()]
    report = compare_runs(find_runs(patterns), metrics, f.step, ignore)
    text = markdown(report)
    for path, content in ((f.out, text), (f.json, json.dumps(report, indent=1))):
      if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as out:
          out.write(content)
    return text
  print(run_command(command), end="", flush=True)


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top,g-multiple-import
  flags.DEFINE_string("runs", None, "Comma-separated workdirs or globs of them.")
  flags.DEFINE_string("metrics", "eval/fd_anime", "Comma-separated metrics.jsonl keys.")
  flags.DEFINE_string("step", "last", "Each run's value at: last, best (evaluation "
                      "headlines) or a step number.")
  flags.DEFINE_string("ignore", "", "Comma-separated config fields that do not make an "
                      "experiment (besides seed), e.g. data.cache_dir.")
  flags.DEFINE_string("out", "", "Also write the markdown table here.")
  flags.DEFINE_string("json", "", "Also write the comparison as JSON here.")
  flags.mark_flag_as_required("runs")
  app.run(main)
