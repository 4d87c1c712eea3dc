"""End-to-end runs: outputs, exact resume (also after SIGKILL), NaN guard, the CLI."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
from PIL import Image
import pytest

from configs import dcgan
from conftest import REPO
from gan_jax import train
from gan_jax.checkpoint import Checkpointer
from gan_jax.errors import ConfigError, NonFiniteError, UserError
from test_checkpoint import abstract_of
from test_step import same, tiny

# Data parallel on 2 of the 8 CPU devices (conftest: mesh_devices): as much a sharded batch
# and replicated state as 8, for less time per step and per save.
pytestmark = pytest.mark.mesh_devices(2)

SPEED_KEYS = ("steps_per_sec", "images_per_sec")


def train_straight_and_resumed(config, tmp_path, total: int, first: int):
  """(state of `total` steps in one run, state of `first` steps then a rerun to `total` in
  another workdir): tmp_path/straight and tmp_path/resumed."""
  config.train.num_steps = total
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  config.train.num_steps = first
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.train.num_steps = total
  return straight, train.train_and_evaluate(config, str(tmp_path / "resumed"))


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in row.items() if k not in SPEED_KEYS} for row in rows]


def read_events(path):
  """Every Event in a TensorBoard file, parsed from the raw record format."""
  from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top
  events = []
  with open(path, "rb") as f:
    while header := f.read(12):
      (length,) = struct.unpack("<Q", header[:8])
      event = event_pb2.Event()
      event.ParseFromString(f.read(length))
      f.read(4)  # data crc
      events.append(event)
  return events


def test_smoke_run_writes_checkpoint_samples_metrics_and_events(tmp_path, smoke_config):
  workdir = str(tmp_path)
  state = train.train_and_evaluate(smoke_config, workdir)
  assert int(state.step) == 4
  assert Checkpointer(os.path.join(workdir, "checkpoints")).all_steps() == [2, 4]

  rows = read_metrics(workdir)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"} <= set(rows[0])

  grid = np.asarray(Image.open(os.path.join(workdir, "samples", "step_0000004.png")))
  assert grid.shape == (4 * 18 + 2, 4 * 18 + 2, 3)  # 16 samples of 16x16, 2 px padding
  tile = grid[2:18, 2:18]
  assert tile.std() > 0  # an image, not the padding colour

  (events_file,) = os.listdir(os.path.join(workdir, "tensorboard"))
  events = read_events(os.path.join(workdir, "tensorboard", events_file))
  assert events[0].file_version == "brain.Event:2"
  tags = {(e.step, v.tag) for e in events for v in e.summary.value}
  assert (4, "d_loss") in tags and (4, "samples") in tags and (1, "images_per_sec") in tags
  d_loss_4 = [v.simple_value for e in events for v in e.summary.value
              if e.step == 4 and v.tag == "d_loss"]
  np.testing.assert_allclose(d_loss_4, [rows[-1]["d_loss"]], rtol=1e-6)
  assert "tensorflow" not in sys.modules


@pytest.mark.parametrize("feed", ["host", "device", "stream"])
def test_resume_continues_exactly(tmp_path, smoke_config, feed):
  """N steps, restart, M more == N + M steps in one go: every array bit-identical."""
  smoke_config.data.feed = feed
  smoke_config.data.hflip = True
  straight, resumed = train_straight_and_resumed(smoke_config, tmp_path, 6, 3)
  assert int(resumed.step) == 6
  assert same(straight, resumed)
  assert read_metrics(tmp_path / "straight") == read_metrics(tmp_path / "resumed")


def test_iterations_per_call_windows_avoid_every_due_step():
  # K = 4 from step 0: nothing due strictly inside [0, 4) with cadences 4 and 8 -> 4.
  assert train.iterations_this_call(0, 4, 100, (4, 8, 0)) == 4
  assert train.iterations_this_call(4, 4, 100, (4, 8)) == 4
  assert train.iterations_this_call(2, 4, 100, (4,)) == 1      # not aligned to K (a resume)
  assert train.iterations_this_call(0, 4, 100, (2,)) == 1      # step 2 is due inside
  assert train.iterations_this_call(0, 4, 100, (3, 4)) == 1    # step 3 is due inside
  assert train.iterations_this_call(96, 4, 99, (4,)) == 1      # would run past num_steps
  assert train.iterations_this_call(96, 4, 100, (4,)) == 4     # ends exactly at it
  assert train.iterations_this_call(5, 1, 100, (4,)) == 1


# One device: the scanned calls on a data-parallel mesh are tests/test_toy.py's
# test_train_seeds_is_the_run_launch_makes (2 devices). Here, on 2 devices one of a
# parameter's 4,096 entries ends 4e-5 (0.7%) apart after the 7 steps (float rounding,
# amplified by training), past this test's tolerance; on 8 it holds, at 18 s against 10 s.
@pytest.mark.mesh_devices(1)
def test_several_iterations_per_call_train_the_same_run(tmp_path, smoke_config):
  """train.iterations_per_call=K: K iterations per device call (one lax.scan) where nothing
  is due inside, single calls elsewhere. The run matches one of one iteration per call to
  float rounding (XLA compiles the scanned body on its own; on this CPU not to the bit),
  with the same metrics rows and checkpoints, and resumes mid-way exactly."""
  smoke_config.data.feed = "device"
  smoke_config.data.hflip = True
  smoke_config.train.num_steps = 7  # windows [0, 3), [3, 6), then one single call
  smoke_config.log.every = smoke_config.sample.every = smoke_config.checkpoint.every = 3
  one = train.train_and_evaluate(smoke_config, str(tmp_path / "one"))
  smoke_config.train.iterations_per_call = 3
  many = train.train_and_evaluate(smoke_config, str(tmp_path / "many"))
  assert int(many.step) == 7
  for name in ("d_params", "g_params", "ema_params", "d_opt_state", "g_opt_state", "g_stats"):
    for a, b in zip(jax.tree.leaves(getattr(one, name)), jax.tree.leaves(getattr(many, name))):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  rows_one, rows_many = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "many")
  assert [r["step"] for r in rows_one] == [r["step"] for r in rows_many] == [3, 6, 7]
  for a, b in zip(rows_one, rows_many):
    np.testing.assert_allclose(a["d_loss"], b["d_loss"], rtol=1e-5)
  assert (Checkpointer(str(tmp_path / "many" / "checkpoints")).all_steps()
          == Checkpointer(str(tmp_path / "one" / "checkpoints")).all_steps())
  smoke_config.train.num_steps = 3
  train.train_and_evaluate(smoke_config, str(tmp_path / "resumed"))
  smoke_config.train.num_steps = 7
  resumed = train.train_and_evaluate(smoke_config, str(tmp_path / "resumed"))
  assert same(resumed, many)
  assert read_metrics(tmp_path / "resumed") == rows_many


def test_iterations_per_call_needs_device_feeding(tmp_path, smoke_config):
  smoke_config.train.iterations_per_call = 0
  with pytest.raises(ConfigError, match="iterations_per_call must be >= 1, got 0"):
    train.validate_config(smoke_config)
  smoke_config.train.iterations_per_call = 2
  smoke_config.data.feed = "host"
  with pytest.raises(ConfigError, match="set config.data.feed=device"):
    train.train_and_evaluate(smoke_config, str(tmp_path))


def test_trains_from_the_tfds_anime_faces(tmp_path, smoke_config, anime_tfds_dir):
  smoke_config.data.source = "tfds:anime_faces"
  smoke_config.data.tfds_dir = anime_tfds_dir
  smoke_config.train.num_steps = 2
  state = train.train_and_evaluate(smoke_config, str(tmp_path))
  assert int(state.step) == 2
  assert all(np.isfinite(r["d_loss"]) for r in read_metrics(tmp_path))
  assert "tensorflow" not in sys.modules


def test_a_finished_run_does_nothing_when_rerun(tmp_path, smoke_config):
  first = train.train_and_evaluate(smoke_config, str(tmp_path))
  again = train.train_and_evaluate(smoke_config, str(tmp_path))
  assert same(first, again)
  assert len(read_metrics(tmp_path)) == 4


def test_resuming_with_an_incompatible_config_says_what_changed(tmp_path, smoke_config):
  smoke_config.train.num_steps = 2
  train.train_and_evaluate(smoke_config, str(tmp_path))
  smoke_config.model.g_width = 16
  with pytest.raises(UserError, match=r"model.g_width: 8 -> 16.*new --workdir") as e:
    train.train_and_evaluate(smoke_config, str(tmp_path))
  assert "Dense_0/kernel: checkpoint ((16, 256), 'float32') vs now ((16, 512), 'float32')" in str(
      e.value)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, smoke_config):
  smoke_config.train.num_steps = 2
  train.train_and_evaluate(smoke_config, str(tmp_path))
  smoke_config.train.num_steps = 8
  smoke_config.optim.d_lr = 1e30  # Adam moves every weight by ~1e30: outputs overflow
  with pytest.raises(NonFiniteError) as e:
    train.train_and_evaluate(smoke_config, str(tmp_path))
  message = str(e.value)
  assert "became" in message and "at step" in message and "step 2" in message
  bad_step = int(message.split("at step ")[1].split(";")[0])
  assert bad_step > 2
  checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
  last = checkpointer.latest_step()
  assert last < bad_step
  state, _, _ = checkpointer.restore(abstract_of(tiny()[1]))  # tiny(): the smoke structure
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))
  assert all(r["step"] < bad_step for r in read_metrics(tmp_path))


# ------------------------------------------------------------------ the CLI --

def launch(*flags, env_devices=None, wait=True):
  from conftest import TEST_XLA_FLAGS  # pylint: disable=g-import-not-at-top
  env = dict(os.environ)
  env["XLA_FLAGS"] = TEST_XLA_FLAGS  # compiled as this process compiles
  env["XDG_CACHE_HOME"] = os.path.join(REPO, ".pytest_cache", "xdg")  # not the user's cache
  if env_devices:
    env["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={env_devices}"
  command = [sys.executable, os.path.join(REPO, "launch.py"), *flags]
  if not wait:
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
  return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_cli_override_changes_the_loss_and_nothing_else(tmp_path, face_data):
  workdir = str(tmp_path)
  result = launch("--config=configs/dcgan.py:smoke", f"--workdir={workdir}",
                  f"--config.data.source={face_data}", "--config.train.num_steps=2",
                  "--config.loss.name=hinge")
  assert result.returncode == 0, result.stderr[-3000:]
  saved = Checkpointer(os.path.join(workdir, "checkpoints")).restore_config()
  reference = dcgan.get_config("smoke")
  reference.data.source = face_data
  reference.train.num_steps = 2
  assert train.config_differences(train.config_to_dict(reference), saved) == [
      "loss.name: 'non_saturating' -> 'hinge'"]


def test_cli_rejects_an_unknown_loss_before_compiling(tmp_path, face_data):
  result = launch("--config=configs/dcgan.py:smoke", f"--workdir={tmp_path}",
                  f"--config.data.source={face_data}", "--config.loss.name=hinj")
  assert result.returncode == 1
  assert ("error: config.loss.name: unknown loss 'hinj'; choose from: began, ebgan, f_jensen_shannon, "
          "f_kl, f_pearson, f_reverse_kl, f_squared_hellinger, hinge, least_squares, minimax, "
          "non_saturating, relativistic, relativistic_average, wasserstein") in result.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def test_cli_rejects_a_mistyped_field(tmp_path):
  result = launch("--config=configs/dcgan.py:smoke", f"--workdir={tmp_path}",
                  "--config.loss.nmae=hinge")
  assert result.returncode != 0
  assert "nmae" in result.stderr and "Traceback" not in result.stderr[-500:]


def test_cli_missing_data_says_where_it_looked(tmp_path):
  result = launch("--config=configs/dcgan.py:smoke", f"--workdir={tmp_path}",
                  f"--config.data.source={tmp_path}/nowhere/*.zip")
  assert result.returncode == 1
  assert f"no training images found at '{tmp_path}/nowhere/*.zip'" in result.stderr
  assert "--config.data.source" in result.stderr


# All 8 devices: the killed process has 8 (its mesh is all of them), and a process with
# fewer CPU devices splits XLA's loops differently (last-bit differences).
@pytest.mark.mesh_devices(8)
def test_sigkilled_run_resumes_exactly(tmp_path, face_data, smoke_config):
  """Kill -9 a training process (preferably mid-save), resume: same as never killed."""
  workdir = tmp_path / "killed"
  ckpt_dir = workdir / "checkpoints"
  flags = ["--config=configs/dcgan.py:smoke", f"--config.data.source={face_data}",
           "--config.checkpoint.every=3", "--config.log.every=1000",
           "--config.sample.every=1000"]
  process = launch(*flags, f"--workdir={workdir}", "--config.train.num_steps=100000",
                   env_devices=len(jax.devices()), wait=False)
  deadline = time.time() + 240
  try:
    while time.time() < deadline and process.poll() is None:
      names = os.listdir(ckpt_dir) if ckpt_dir.exists() else []
      if "3" in names and any("tmp" in n for n in names):
        break  # a later checkpoint is being written right now
      time.sleep(0.002)
  finally:
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
  assert process.returncode == -signal.SIGKILL, stderr[-3000:]
  last = Checkpointer(str(ckpt_dir)).latest_step()
  assert last is not None and last >= 3, stderr[-3000:]

  for name in ("checkpoint", "log", "sample"):
    smoke_config[name].every = 3 if name == "checkpoint" else 1000
  smoke_config.train.num_steps = last + 4
  resumed = train.train_and_evaluate(smoke_config, str(workdir))
  straight = train.train_and_evaluate(smoke_config, str(tmp_path / "straight"))
  assert int(resumed.step) == last + 4
  assert same(straight, resumed)


def test_a_folder_of_your_own_pngs_trains_with_one_flag(tmp_path, cache_dir):
  from conftest import write_synthetic_faces  # pylint: disable=g-import-not-at-top
  folder = write_synthetic_faces(str(tmp_path / "my pngs"), count=20, size=40)
  result = launch("--config=configs/dcgan.py:smoke", f"--workdir={tmp_path / 'run'}",
                  f"--config.data.source=folder:{folder}", "--config.train.num_steps=2")
  assert result.returncode == 0, result.stderr[-3000:]
  # configs/dcgan.py trains on the 'train' split: 1 in 20 files (here 0000.png) is held out.
  assert f"loaded 19 images from folder:{folder} (train split)" in result.stderr
  assert os.path.exists(tmp_path / "run" / "samples" / "step_0000002.png")


def test_a_recipe_config_runs_from_the_command_line(tmp_path, face_data):
  """configs/<recipe>.py imports configs/dcgan.py: that must work through --config too."""
  result = launch("--config=configs/wgan_gp.py:smoke", f"--workdir={tmp_path}",
                  f"--config.data.source={face_data}", "--config.train.num_steps=1",
                  "--config.penalty.wgan_gp.weight=5")
  assert result.returncode == 0, result.stderr[-3000:]
  saved = Checkpointer(os.path.join(tmp_path, "checkpoints")).restore_config()
  assert saved["loss"]["name"] == "wasserstein" and saved["penalty"]["use"] == "wgan_gp"
  assert saved["penalty"]["wgan_gp"]["weight"] == 5 and saved["train"]["d_steps"] == 5


def test_max_minutes_stops_saves_and_resumes_like_an_uninterrupted_run(tmp_path, smoke_config):
  """A run out of time stops at the step it is on, saving and sampling there; rerun (without
  the limit) it goes on to the same state as a run that never stopped."""
  reference = train.train_and_evaluate(smoke_config, str(tmp_path / "whole"))
  smoke_config.train.max_minutes = 1e-9  # over after the first step
  stopped = train.train_and_evaluate(smoke_config, str(tmp_path / "cut"))
  assert int(stopped.step) == 1
  assert Checkpointer(str(tmp_path / "cut" / "checkpoints")).latest_step() == 1
  assert os.path.exists(tmp_path / "cut" / "samples" / "step_0000001.png")
  assert [row["step"] for row in read_metrics(tmp_path / "cut")] == [1]
  smoke_config.train.max_minutes = 0.0
  assert same(train.train_and_evaluate(smoke_config, str(tmp_path / "cut")), reference)


def test_a_negative_time_limit_is_refused(smoke_config):
  smoke_config.train.max_minutes = -1.0
  with pytest.raises(train.ConfigError, match="max_minutes must be >= 0"):
    train.validate_config(smoke_config)
