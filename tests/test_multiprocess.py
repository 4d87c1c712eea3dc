"""Training on several processes (multi-host): 2 CPU processes on localhost, as one would run
one process per host, against the same global batch in one process."""

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import REPO
from gan_jax import parallel, train
from gan_jax.checkpoint import BEST_DIR, Checkpointer
from gan_jax.errors import UserError
from test_checkpoint import abstract_of
from test_train import read_metrics

PROCESSES, DEVICES_PER_PROCESS = 2, 2
# Both sides compile with XLA's optimisations mostly off: the same programs, 2-5x faster to
# compile on the CPU (the test's main cost), and still compared like for like.
FAST_COMPILE = "jax_disable_most_optimizations"


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_processes(flags, workdir, log_dir):
  """launch.py once per process, each with DEVICES_PER_PROCESS CPU devices, joined on a free
  localhost port; stderr of process i goes to log_dir/i.log."""
  from conftest import TEST_XLA_FLAGS  # pylint: disable=g-import-not-at-top
  env = dict(os.environ)
  env["XLA_FLAGS"] = TEST_XLA_FLAGS  # compiled as the single-process reference is
  env.update(JAX_NUM_CPU_DEVICES=str(DEVICES_PER_PROCESS), JAX_PLATFORMS="cpu",
             **{FAST_COMPILE.upper(): "1"},
             XDG_CACHE_HOME=os.path.join(REPO, ".pytest_cache", "xdg"))
  coordinator = f"127.0.0.1:{free_port()}"
  processes = []
  for i in range(PROCESSES):
    command = [sys.executable, os.path.join(REPO, "launch.py"), *flags, f"--workdir={workdir}",
               f"--coordinator_address={coordinator}", f"--num_processes={PROCESSES}",
               f"--process_id={i}"]
    with open(os.path.join(log_dir, f"{i}.log"), "w") as log:
      processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                        stderr=log))
  return processes


def wait_all(processes, log_dir, timeout=240.0):
  """Return codes once every process ended; the first failure (or the timeout) ends the rest,
  which would otherwise wait for their peer."""
  deadline = time.monotonic() + timeout
  try:
    while any(p.poll() is None for p in processes):
      if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in processes):
        break
      time.sleep(0.05)
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
      p.wait()
  codes = [p.returncode for p in processes]
  logs = ""
  if codes != [0] * len(processes):
    for i in range(len(processes)):
      with open(os.path.join(log_dir, f"{i}.log")) as f:
        logs += f"--- process {i} ---\n{f.read()[-3000:]}\n"
  return codes, logs


def train_both_ways(smoke_config, settings, tmp_path):
  """The smoke run with `settings` ({'section.field': value}) on 2 processes x 2 devices
  (tmp_path/two_processes) and, meanwhile, in this process on 4 of its devices (the tests'
  mark; tmp_path/one_process); returns the one-process final state. Fails with the
  processes' logs if one of them fails."""
  flags = ["--config=configs/dcgan.py:smoke", f"--config.data.source={smoke_config.data.source}",
           f"--config.data.cache_dir={smoke_config.data.cache_dir}"]
  for path, value in settings.items():
    section, field = path.split(".")
    smoke_config[section][field] = value
    flags.append(f"--config.{path}={value}")
  logs = tmp_path / "logs"
  logs.mkdir()
  processes = start_processes(flags, tmp_path / "two_processes", logs)
  try:
    jax.config.update(FAST_COMPILE, True)
    try:
      reference = train.train_and_evaluate(smoke_config, str(tmp_path / "one_process"))
    finally:
      jax.config.update(FAST_COMPILE, False)  # the suite's default
  finally:
    codes, output = wait_all(processes, logs)
  assert codes == [0] * PROCESSES, output
  return reference


@pytest.mark.mesh_devices(PROCESSES * DEVICES_PER_PROCESS)  # the one-process reference's
@pytest.mark.parametrize("feed", ["host", "stream"])
def test_two_processes_train_like_one_process_with_the_same_global_batch(tmp_path, smoke_config,
                                                                         feed):
  """2 processes x 2 CPU devices == 1 process x 4 devices, for the same global batch.

  The processes each feed their own half of every batch (HostFeeder gathers it from the
  decoded set, StreamFeeder decodes only its own images) and all-reduce across
  processes with gloo. Not bit-identical: gloo adds the 4 devices' partial sums in another
  order than XLA's all-reduce within one process. Measured after 3 steps: parameters and
  statistics differ by at most 1.2e-7 (one float32 ulp near 1); the tolerances, as in
  test_step.test_eight_devices_match_one_device, leave a margin of ~10x.
  """
  reference = train_both_ways(smoke_config, {"data.feed": feed, "train.num_steps": 3}, tmp_path)
  workdir = tmp_path / "two_processes"
  summary = {"host": "fed from host memory", "stream": "streaming"}[feed]
  assert summary in (tmp_path / "logs" / "0.log").read_text()

  # (b) Their checkpoint restores in one process, (a) to the one-process state.
  checkpointer = Checkpointer(str(workdir / "checkpoints"))
  assert checkpointer.all_steps() == [2, 3]
  state, config, step = checkpointer.restore(abstract_of(reference))
  assert step == 3 and int(state.step) == 3
  assert config == train.config_to_dict(smoke_config)

  for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

  # (c) Only process 0 wrote outputs: one metrics.jsonl with one row per step, one event file.
  assert sorted(os.listdir(workdir)) == ["checkpoints", "metrics.jsonl", "samples", "tensorboard"]
  rows, expected = read_metrics(workdir), read_metrics(tmp_path / "one_process")
  assert [row["step"] for row in rows] == [1, 2, 3]
  for row, want in zip(rows, expected):
    assert row.keys() == want.keys()
    np.testing.assert_allclose([row[k] for k in want], list(want.values()), rtol=1e-5,
                               atol=1e-6)
  assert len(os.listdir(workdir / "tensorboard")) == 1
  assert sorted(os.listdir(workdir / "samples")) == ["step_0000002.png", "step_0000003.png"]


@pytest.mark.mesh_devices(PROCESSES * DEVICES_PER_PROCESS)
def test_two_processes_feed_from_device_memory_and_evaluate_in_the_loop(tmp_path, smoke_config):
  """data.feed=device and evaluation during training, with its best checkpoint and samples
  corrected by a tuned D (eval.mh_steps, eval.mh_tune), over 2 processes: the same batches,
  reports and best checkpoint as one process with 4 devices.

  Each process places only its own devices' shards of the dataset, and each device draws
  from its shard by its index along `data`, so the batches do not depend on the process
  count. Every process samples and evaluates (the sampling runs on every device); process
  0's verdict decides the best checkpoint, which every process saves, and only process 0
  writes the reports. Tolerances as in the host-fed test above.
  """
  reference = train_both_ways(
      smoke_config, {"data.feed": "device", "train.num_steps": 4, "eval.every": 2,
                     "eval.metrics": "fd_anime", "eval.best": "fd_anime",
                     "eval.mh_steps": 2, "eval.mh_tune": 2}, tmp_path)
  workdir = tmp_path / "two_processes"
  assert "fed from device memory" in (tmp_path / "logs" / "0.log").read_text()

  state, _, step = Checkpointer(str(workdir / "checkpoints")).restore(abstract_of(reference))
  assert step == 4
  for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

  rows = {row["step"]: row for row in read_metrics(workdir)}
  expected = {row["step"]: row for row in read_metrics(tmp_path / "one_process")}
  for step in (2, 4):
    assert rows[step]["eval/fd_anime"] == pytest.approx(expected[step]["eval/fd_anime"],
                                                        rel=1e-4)
    assert (workdir / "eval" / f"step_{step}_mh2_tune2.json").exists()
  with open(workdir / (BEST_DIR + ".json")) as f, \
       open(tmp_path / "one_process" / (BEST_DIR + ".json")) as g:
    best, best_expected = json.load(f), json.load(g)
  assert best["step"] == best_expected["step"]
  assert best["value"] == pytest.approx(best_expected["value"], rel=1e-4)
  best_state, _, best_step = Checkpointer(str(workdir / BEST_DIR)).restore(
      abstract_of(reference))
  assert best_step == best["step"] and int(best_state.step) == best_step


# ------------------------------------------------------- in-process pieces --

def test_a_single_process_run_needs_no_distributed_setup():
  assert parallel.initialize_distributed() is False


def test_incomplete_distributed_flags_say_what_is_missing():
  with pytest.raises(UserError, match="needs --num_processes, --process_id as well"):
    parallel.initialize_distributed(coordinator_address="10.0.0.1:1234")
  with pytest.raises(UserError, match=r"--process_id must be in \[0, 2\), got 2"):
    parallel.initialize_distributed("10.0.0.1:1234", num_processes=2, process_id=2)


def test_one_process_feeds_every_row():
  mesh = parallel.make_mesh()
  rows = parallel.process_rows(parallel.batch_sharding(mesh, batch_axis=1), (2, 16), axis=1)
  np.testing.assert_array_equal(rows, np.arange(16))
