"""Results over seeds (gan_jax/compare_runs.py): grouping runs by config, the statistics, the
step choice, protocol mismatches, the errors, and two real toy runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from configs import toy_ring
from conftest import REPO
from gan_jax import compare_runs, train
from gan_jax.checkpoint import Checkpointer
from gan_jax.errors import UserError

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)

PROTOCOL = {"n_fake": 10000, "n_real": 10000, "real": "zip:faces (train split)",
            "features": "anime tag classifier"}


def fake_run(workdir, seed: int, loss: str, fd_by_step, n_fake: int = 10000) -> str:
  """A workdir as a run writes it: a checkpoint carrying the config, metrics.jsonl rows (a
  log row every 5 steps, eval/fd_anime and eval/hit/both at the steps of `fd_by_step`) and
  eval/step_N.json reports with their protocols."""
  config = {"seed": seed, "loss": {"name": loss}, "train": {"num_steps": 30}}
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  checkpointer.save(30, {"x": np.zeros(2, np.float32)}, config)
  checkpointer.close()
  rows = []
  for step in range(5, 31, 5):
    row = {"step": step, "d_loss": 1.0 / step}
    if step in fd_by_step:
      row.update({"eval/fd_anime": fd_by_step[step], "eval/hit/both": fd_by_step[step] / 100})
    rows.append(row)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows))
  os.makedirs(os.path.join(workdir, "eval"))
  for step, fd in fd_by_step.items():
    protocol = dict(PROTOCOL, n_fake=n_fake, step=step,
                    generator=f"EMA generator, fixed eval latents (seed {seed})")
    report = {"fd_anime": {"values": {"fd_anime": fd}, "protocol": protocol},
              "tag_hit_rate": {"values": {"hit/both": fd / 100}, "protocol": protocol}}
    with open(os.path.join(workdir, "eval", f"step_{step}.json"), "w") as f:
      json.dump({"step": step, "seconds": 1.0, "metrics": report}, f)
  return workdir


@pytest.fixture
def five_runs(tmp_path):
  """hinge on seeds 0-2 (last fd_anime 10, 12, 14) and non_saturating on seeds 0-1 (20, 30)."""
  runs = []
  for seed, last in enumerate((10.0, 12.0, 14.0)):
    runs.append(fake_run(str(tmp_path / f"hinge_s{seed}"), seed, "hinge",
                         {10: last + 5, 20: last - 1, 30: last}))
  for seed, last in enumerate((20.0, 30.0)):
    runs.append(fake_run(str(tmp_path / f"ns_s{seed}"), seed, "non_saturating",
                         {10: last + 5, 20: last - 1, 30: last}))
  return runs


def test_runs_group_by_config_and_report_their_distribution(five_runs, tmp_path):
  found = compare_runs.find_runs([str(tmp_path / "hinge_*"), str(tmp_path / "*_s0")])
  assert [os.path.basename(w) for w in found] == ["hinge_s0", "hinge_s1", "hinge_s2", "ns_s0"]
  report = compare_runs.compare_runs(five_runs, ["eval/fd_anime", "d_loss"])
  assert report["varying"] == ["loss.name"]  # seed repeats an experiment; it does not name one
  (hinge, ns) = report["groups"]
  assert hinge["name"] == "loss.name=hinge" and ns["name"] == "loss.name=non_saturating"
  assert [r["seed"] for r in hinge["runs"]] == [0, 1, 2]
  assert hinge["stats"]["eval/fd_anime"] == {"n": 3, "mean": 12.0, "std": 2.0, "median": 12.0,
                                             "min": 10.0, "max": 14.0}
  assert ns["stats"]["eval/fd_anime"]["std"] == pytest.approx(50 ** 0.5)  # (20, 30): sqrt(50)
  assert hinge["runs"][0]["values"]["d_loss"] == [pytest.approx(1 / 30), 30]
  assert report["protocol_mismatches"] == []
  text = compare_runs.markdown(report)
  assert text.startswith("Over seeds, at each run's last value; mean +- sample std")
  assert "| experiment | runs | seeds | eval/fd_anime | d_loss |" in text
  assert "| loss.name=hinge | 3 | 0, 1, 2 | 12 +- 2 (12, 10-14) |" in text
  assert "| loss.name=non_saturating | 2 | 0, 1 | 25 +- 7.071 (25, 20-30) |" in text
  assert "- loss.name=hinge, seed 1: eval/fd_anime 12 (step 30)" in text
  (difference,) = report["differences"]
  assert difference["name"] == "loss.name=non_saturating"
  assert difference["versus"] == "loss.name=hinge"
  # Welch by hand: hinge (10, 12, 14), non_saturating (20, 30): 25 - 12 = 13, the variance of
  # the difference 4/3 + 50/2, its degrees of freedom (Welch-Satterthwaite) ~1.108.
  variance = 4 / 3 + 50 / 2
  dof = variance ** 2 / ((4 / 3) ** 2 / 2 + (50 / 2) ** 2 / 1)
  half = scipy.stats.t.ppf(0.975, dof) * variance ** 0.5
  fd = difference["eval/fd_anime"]
  assert fd["difference"] == pytest.approx(13.0)
  assert (fd["low"], fd["high"]) == (pytest.approx(13 - half), pytest.approx(13 + half))
  assert fd["p"] == pytest.approx(2 * scipy.stats.t.sf(13 / variance ** 0.5, dof))
  assert np.isnan(difference["d_loss"]["p"])  # no spread at all: no interval
  assert "Difference from loss.name=hinge (the group's mean minus its;" in text
  assert f"| loss.name=non_saturating | 13 [{13 - half:.4g}, {13 + half:.4g}], p " in text
  one = compare_runs.compare_runs(five_runs[:1], ["eval/fd_anime"])
  assert one["differences"] == []
  assert one["groups"][0]["name"] == "all runs" and np.isnan(one["groups"][0]["stats"][
      "eval/fd_anime"]["std"])
  assert "| all runs | 1 | 0 | 10 (10, 10-10) |" in compare_runs.markdown(one)


def test_the_step_each_run_contributes(five_runs):
  run = compare_runs.load_run(five_runs[0])  # fd_anime 15, 9, 10 at steps 10, 20, 30
  assert compare_runs.run_value(run, "eval/fd_anime", "last") == (10.0, 30)
  assert compare_runs.run_value(run, "eval/fd_anime", "best") == (9.0, 20)  # lower is better
  assert compare_runs.run_value(run, "eval/hit/both", "best") == (0.15, 10)  # higher is better
  assert compare_runs.run_value(run, "eval/fd_anime", "10") == (15.0, 10)
  with pytest.raises(UserError, match=r"has no eval/fd_anime at step 25 \(it has steps 10, 20, "
                     "30"):
    compare_runs.run_value(run, "eval/fd_anime", "25")
  with pytest.raises(UserError, match="--step=best ranks evaluation headlines .* 'd_loss' is "
                     "not one"):
    compare_runs.run_value(run, "d_loss", "best")
  with pytest.raises(UserError, match="--step must be last, best or a step number"):
    compare_runs.run_value(run, "d_loss", "final")
  with pytest.raises(UserError, match="logged no 'toy/modes_covered' \\(its metrics: d_loss, "
                     "eval/fd_anime, eval/hit/both\\)"):
    compare_runs.run_value(run, "toy/modes_covered")
  report = compare_runs.compare_runs(five_runs, ["eval/fd_anime"], step="best")
  assert report["groups"][0]["stats"]["eval/fd_anime"]["mean"] == 11.0  # 9, 11, 13
  assert compare_runs.markdown(report).startswith("Over seeds, at each run's best evaluation "
                                                  "(optimistic: the checkpoint is chosen on")
  assert compare_runs.markdown(compare_runs.compare_runs(five_runs, ["eval/fd_anime"])).startswith(
      "Over seeds, at each run's last value;")


def test_ignored_fields_do_not_make_an_experiment(five_runs):
  report = compare_runs.compare_runs(five_runs, ["eval/fd_anime"], ignore=["loss.name"])
  assert report["varying"] == [] and [g["name"] for g in report["groups"]] == ["all runs"]
  assert report["groups"][0]["stats"]["eval/fd_anime"]["n"] == 5
  with pytest.raises(UserError, match="--ignore: no run's config has loss.nme"):
    compare_runs.compare_runs(five_runs, ["eval/fd_anime"], ignore=["loss.nme"])


def test_a_run_measured_under_another_protocol_is_flagged(five_runs, tmp_path):
  odd = fake_run(str(tmp_path / "odd"), 3, "hinge", {30: 11.0}, n_fake=5000)
  report = compare_runs.compare_runs(five_runs + [odd], ["eval/fd_anime", "d_loss"])
  (mismatch,) = report["protocol_mismatches"]  # d_loss has no protocol; seeds differ freely
  assert mismatch["metric"] == "eval/fd_anime" and mismatch["fields"] == ["n_fake"]
  assert mismatch["protocols"][odd] == {"n_fake": 5000}
  assert "WARNING: the runs measured eval/fd_anime under different protocols (fields n_fake)" \
      in compare_runs.markdown(report)


def test_what_is_not_a_run_says_so(tmp_path):
  with pytest.raises(UserError, match="matches no folder"):
    compare_runs.find_runs([str(tmp_path / "nothing_*")])
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="is not a run's workdir"):
    compare_runs.compare_runs([str(tmp_path / "empty")], ["d_loss"])
  with pytest.raises(UserError, match="--metrics names no metric"):
    compare_runs.compare_runs([str(tmp_path / "empty")], [])


def test_two_toy_seeds_and_the_command(tmp_path):
  """Two real toy runs (seeds 0, 1), then the command line on them."""
  workdirs = []
  for seed in (0, 1):
    config = toy_ring.get_config("smoke")
    config.seed = seed
    workdirs.append(str(tmp_path / f"ring_s{seed}"))
    train.train_and_evaluate(config, workdirs[-1])
  report = compare_runs.compare_runs(workdirs, ["toy/modes_covered", "d_loss"])
  (group,) = report["groups"]
  assert group["name"] == "all runs" and report["varying"] == []
  for run, workdir in zip(group["runs"], workdirs):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      last = [json.loads(line) for line in f][-1]
    assert run["values"]["toy/modes_covered"] == [last["toy/modes_covered"], last["step"]]
    assert run["values"]["d_loss"] == [pytest.approx(last["d_loss"]), last["step"]]
  out = tmp_path / "table.md"
  result = subprocess.run(
      [sys.executable, "-m", "gan_jax.compare_runs", f"--runs={tmp_path / 'ring_s*'}",
       "--metrics=toy/modes_covered", f"--out={out}", f"--json={tmp_path / 'table.json'}"],
      cwd=REPO, capture_output=True, text=True, check=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert "| all runs | 2 | 0, 1 |" in result.stdout and out.read_text() == result.stdout
  assert json.loads((tmp_path / "table.json").read_text())["groups"][0]["stats"][
      "toy/modes_covered"]["n"] == 2
