"""Evaluation of runs: periodic metrics, the best checkpoint, branching, the evaluate command."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from configs import began
from conftest import REAL_FACES_ZIP, REPO
from gan_jax import d_tuning, evaluate, train
from gan_jax.checkpoint import BEST_DIR, Checkpointer, parse_init_from
from gan_jax.errors import ConfigError, UserError
from gan_jax.metrics import evaluator as evaluator_lib
from test_step import same
from test_train import read_metrics

pytestmark = pytest.mark.mesh_devices(2)  # data parallel, on 2 of the 8 CPU devices


@pytest.fixture
def eval_config(smoke_config):
  """The smoke run evaluated every 2 steps with offline metrics (held out: its test split)."""
  smoke_config.eval.every = 2
  smoke_config.eval.metrics = "fd_anime,kid_anime,tags,duplicates,memorisation"
  smoke_config.eval.best = "fd_anime"
  return smoke_config


def test_periodic_evaluation_writes_metrics_reports_and_the_best_checkpoint(tmp_path, eval_config):
  workdir = str(tmp_path / "run")
  evaluated = train.train_and_evaluate(eval_config, workdir)
  eval_config.eval.every = 0
  assert same(evaluated, train.train_and_evaluate(eval_config, str(tmp_path / "plain")))
  rows = {r["step"]: r for r in read_metrics(workdir)}
  for step in (2, 4):
    for key in ("eval/fd_anime", "eval/kid_anime", "eval/kid_anime_std", "eval/dup_rate",
                "eval/diversity_ratio", "eval/mem/ratio_pixels", "eval/mem/copy_rate_anime",
                "eval/tags/hair_color_tv"):
      assert np.isfinite(rows[step][key]), key
    with open(os.path.join(workdir, "eval", f"step_{step}.json")) as f:
      report = json.load(f)["metrics"]
    assert report["fd_anime"]["values"]["fd_anime"] == pytest.approx(rows[step]["eval/fd_anime"])
    protocol = report["kid_anime"]["protocol"]
    # 64 real images, or all 60 of the generated set's train split when the real zip is absent.
    assert protocol["n_fake"] == 32 and protocol["n_real"] == (64 if REAL_FACES_ZIP else 60)
    assert protocol["step"] == step
    # The real images' source and split, once each (the held-out set's are named too).
    assert protocol["real"].startswith(f"{eval_config.data.source} (train split), held-out ")
    assert protocol["real"].count("split") == 1 and protocol["real"].endswith("(test)")
    assert protocol["subset_size"] == 16 and "tag classifier" in protocol["features"]
    # The held-out split is 1 in 20 of the data: the real zip has >32, the generated set 4.
    assert report["memorisation"]["protocol"]["n_heldout"] == (32 if REAL_FACES_ZIP else 4)
    for picture in ("samples", "nearest"):
      assert os.path.exists(os.path.join(workdir, "eval", f"step_{step}_{picture}.png"))
  assert "eval/fd_anime" not in rows[1]
  with open(os.path.join(workdir, BEST_DIR + ".json")) as f:
    best = json.load(f)
  best_step = min((2, 4), key=lambda s: rows[s]["eval/fd_anime"])
  assert best == {"metric": "fd_anime", "value": pytest.approx(rows[best_step]["eval/fd_anime"]),
                  "step": best_step}
  assert Checkpointer(os.path.join(workdir, BEST_DIR)).all_steps() == [best_step]


def test_evaluation_is_deterministic_and_the_command_reproduces_training_figures(tmp_path,
                                                                                 eval_config):
  eval_config.eval.best = ""
  workdir = str(tmp_path)
  train.train_and_evaluate(eval_config, workdir)
  during = {r["step"]: r for r in read_metrics(workdir)}
  reports = evaluate.evaluate_run(workdir, "all")
  assert [r["step"] for r in reports] == [2, 4]
  for r in reports:
    flat = evaluator_lib.flatten(r["metrics"])
    for key, value in flat.items():
      assert value == pytest.approx(during[r["step"]][key], rel=1e-5, abs=1e-7), key
  # Another metric set from the command line, for one step, in a process with 1 CPU device
  # (the run trained on 2): checkpoints restore onto whatever devices evaluate them.
  out = subprocess.run(
      [sys.executable, "-m", "gan_jax.evaluate", f"--workdir={workdir}", "--step=2",
       "--metrics=duplicates", "--num_samples=20"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "step 2:" in out.stdout and "dup_rate" in out.stdout
  with open(os.path.join(workdir, "eval", "step_2.json")) as f:
    report = json.load(f)["metrics"]
  assert list(report) == ["duplicates"] and report["duplicates"]["protocol"]["n_fake"] == 20


def test_d_tuned_against_the_frozen_ema_generator_before_the_correction(tmp_path, smoke_config,
                                                                        monkeypatch):
  """eval.mh_tune=N: D trains on alone for N updates against the frozen G-EMA, on the
  training images outside the reference set, before the Metropolis-Hastings correction;
  the loop and the command give the same report, in its own file."""
  smoke_config.eval.every = smoke_config.train.num_steps
  smoke_config.eval.metrics = "fd_anime"
  smoke_config.eval.num_real = 20
  smoke_config.eval.mh_steps, smoke_config.eval.mh_tune = 2, 3
  smoke_config.optim.d_lr = 0.02  # a D whose logits spread within the few updates
  smoke_config.loss.name = "hinge"  # tuned with it by default, or with mh_tune_loss's
  workdir, step = str(tmp_path), smoke_config.train.num_steps
  trained = train.train_and_evaluate(smoke_config, workdir)
  during = read_metrics(workdir)[-1]["eval/fd_anime"]
  with open(os.path.join(workdir, "eval", f"step_{step}_mh2_tune3.json")) as f:
    saved = json.load(f)
  assert "with D (D first trained 3 updates against the frozen EMA generator on the training " \
      "images outside the reference set) over 2 proposals" in saved["metrics"]["fd_anime"][
          "protocol"]["generator"]
  assert saved["metrics"]["fd_anime"]["values"]["fd_anime"] == pytest.approx(during)
  (again,) = evaluate.evaluate_run(workdir)
  assert again["metrics"]["fd_anime"]["values"]["fd_anime"] == pytest.approx(during, rel=1e-5)
  (untuned,) = evaluate.evaluate_run(workdir, "latest", {"mh_tune": 0})
  assert os.path.exists(os.path.join(workdir, "eval", f"step_{step}_mh2.json"))
  assert untuned["metrics"]["fd_anime"]["values"]["fd_anime"] != pytest.approx(during)
  make_tuner, tuned_with = d_tuning.make_tuner, []
  monkeypatch.setattr(d_tuning, "make_tuner", lambda *args: tuned_with.append(args[-1])
                      or make_tuner(*args))
  evaluate.evaluate_run(workdir, "latest", {"mh_tune_loss": "non_saturating"})
  assert tuned_with == ["non_saturating"]
  with open(os.path.join(workdir, "eval", f"step_{step}_mh2_tune3_non_saturating.json")) as f:
    assert "trained 3 updates with the non_saturating loss against" in json.load(f)[
        "metrics"]["fd_anime"]["protocol"]["generator"]
  monkeypatch.setattr(d_tuning, "make_tuner", make_tuner)
  # Tuned on the training images outside the reference set, none of them compared with.
  everything, labels, rows, description = evaluate.tuning_images(smoke_config)
  images = everything[rows]
  reference = evaluate.load_reference_sets(smoke_config, False).train
  assert labels is None and len(reference) == 20 and len(images) + 20 == len(everything)
  assert description == f"the {len(images)} training images outside the reference set"
  assert not set(map(bytes, images)) & set(map(bytes, reference))
  smoke_config.eval.num_real = 0  # the whole train split is the reference set: tuned on it all
  np.testing.assert_array_equal(evaluate.load_reference_sets(smoke_config, False).train,
                                everything)
  _, _, all_rows, description = evaluate.tuning_images(smoke_config)
  np.testing.assert_array_equal(all_rows, np.arange(len(everything)))
  assert description == f"all {len(everything)} training images (the reference set is all of them)"
  # G set to its EMA and left there, D moved; reproducible; 0 updates change nothing.
  generator, discriminator = train.make_models(smoke_config)
  tune = d_tuning.make_tuner(smoke_config, generator, discriminator)
  tuned = tune(trained, images, None, 3)
  assert int(tuned.step) == step + 3
  assert same(tuned.g_params, trained.ema_params) and same(tuned.ema_params, trained.ema_params)
  assert not same(tuned.d_params, trained.d_params)
  assert same(tuned, tune(trained, images, None, 3))
  assert same(tune(trained, images, None, 0).d_params, trained.d_params)
  bce = d_tuning.make_tuner(smoke_config, generator, discriminator, "non_saturating")
  assert not same(bce(trained, images, None, 3).d_params, tuned.d_params)
  smoke_config.optim.d_lr = 0.0  # benchmarks/mh_images.py --tune_lr=0: only D's statistics move
  frozen = d_tuning.make_tuner(smoke_config, generator, discriminator)(trained, images, None, 3)
  assert same(frozen.d_params, trained.d_params) and not same(frozen.d_stats, trained.d_stats)
  # Drawing from `rows` of the whole set is drawing from those rows alone.
  assert same(tune(trained, everything, None, 3, rows), tuned)
  with pytest.raises(ValueError, match="needs training images"):
    tune(trained, images[:0], None, 1)
  with pytest.raises(UserError, match="--mh_tune must be >= 0"):
    evaluate.evaluate_run(workdir, "latest", {"mh_tune": -1})
  with pytest.raises(UserError, match="--mh_tune=3 tunes D .* set mh_steps > 0 too"):
    evaluate.evaluate_run(workdir, "latest", {"mh_steps": 0})
  autoencoder = train.make_models(began.get_config("smoke"))[1]
  with pytest.raises(ValueError, match="mh_tune_loss='minimax': this D is an auto-encoder"):
    evaluate.check_mh_options(ml_collections.ConfigDict(
        dict(mh_steps=1, mh_tune=1, mh_tune_loss="minimax")), autoencoder)


def test_the_evaluate_command_explains_bad_steps_and_missing_runs(tmp_path, smoke_config):
  with pytest.raises(UserError, match="no checkpoints in"):
    evaluate.evaluate_run(str(tmp_path / "nothing"))
  train.train_and_evaluate(smoke_config, str(tmp_path / "run"))
  with pytest.raises(UserError, match="saved steps: 2, 4"):
    evaluate.evaluate_run(str(tmp_path / "run"), "3")
  with pytest.raises(UserError, match="config.eval.best"):
    evaluate.evaluate_run(str(tmp_path / "run"), "best")
  with pytest.raises(UserError, match="unknown eval option 'nope'"):
    evaluate.evaluate_run(str(tmp_path / "run"), "latest", {"nope": 1})


def test_a_branch_from_an_earlier_checkpoint_continues_that_run_exactly(tmp_path, smoke_config):
  """init_from=W@2 in a new workdir == the original run from step 2 on; W is left untouched."""
  smoke_config.checkpoint.keep = 0
  original = train.train_and_evaluate(smoke_config, str(tmp_path / "original"))
  before = sorted(os.listdir(tmp_path / "original" / "checkpoints"))
  smoke_config.checkpoint.init_from = f"{tmp_path / 'original'}@2"
  branch = train.train_and_evaluate(smoke_config, str(tmp_path / "branch"))
  assert same(original, branch)
  assert Checkpointer(str(tmp_path / "branch" / "checkpoints")).all_steps() == [4]
  assert [r["step"] for r in read_metrics(tmp_path / "branch")] == [3, 4]
  assert sorted(os.listdir(tmp_path / "original" / "checkpoints")) == before
  # With other settings (the lecture's remedy: go back before the collapse, change something).
  smoke_config.optim.d_lr = 1e-5
  changed = train.train_and_evaluate(smoke_config, str(tmp_path / "changed"))
  assert not same(original.d_params, changed.d_params)
  smoke_config.checkpoint.init_from = f"{tmp_path / 'original'}@3"
  with pytest.raises(UserError, match="no checkpoint of step 3.*saved steps: 2, 4"):
    train.train_and_evaluate(smoke_config, str(tmp_path / "bad"))


def test_parse_init_from():
  assert parse_init_from("/runs/a@200") == ("/runs/a/checkpoints", "200")
  assert parse_init_from("/runs/a") == ("/runs/a/checkpoints", None)
  assert parse_init_from("/runs/a@best") == (f"/runs/a/{BEST_DIR}", None)
  with pytest.raises(ValueError, match="WORKDIR@STEP"):
    parse_init_from("/runs/a@latest")


@pytest.mark.parametrize("field,value,message", [
    ("metrics", "fd_anime,fjd", "unknown metric 'fjd'; choose from: afd, dc, duplicates"),
    ("best", "fid", "config.eval.best='fid' is not among config.eval.metrics"),
    ("every", -1, "config.eval.every must be >= 0"),
    ("mh_steps", -1, "config.eval.mh_steps must be >= 0"),
    ("mh_tune", -1, "config.eval.mh_tune must be >= 0"),
    ("mh_tune", 5, "config.eval.mh_tune=5 tunes D for the Metropolis-Hastings correction, which "
     "is off: set mh_steps > 0 too"),
    ("mh_tune_loss", "hinge", "config.eval.mh_tune_loss: 'hinge' is not a loss whose optimal D's "
     "logit is log p_data / p_G; choose from: minimax, non_saturating"),
    ("mh_tune_loss", "minimax", "config.eval.mh_tune_loss='minimax' is the loss of a D tuning, "
     "which is off: set mh_tune > 0 too"),
])
def test_bad_eval_config_fails_before_anything_runs(tmp_path, smoke_config, field, value, message):
  smoke_config.eval.every = 2
  smoke_config.eval[field] = value
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(smoke_config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


def test_memorisation_without_held_out_data_says_how_to_get_some(tmp_path, smoke_config):
  smoke_config.data.split = ""  # trains on every image: nothing is held out
  smoke_config.eval.every = 2
  smoke_config.eval.metrics = "memorisation"
  smoke_config.eval.best = ""
  with pytest.raises(ConfigError, match="heldout_source"):
    train.train_and_evaluate(smoke_config, str(tmp_path))


def test_toy_runs_refuse_image_metrics(tmp_path):
  from configs import toy_ring  # pylint: disable=g-import-not-at-top
  config = toy_ring.get_config("smoke")
  config.eval.every = 10
  with pytest.raises(ConfigError, match="toy data"):
    train.train_and_evaluate(config, str(tmp_path))


def test_is_better_follows_each_metrics_direction():
  assert evaluator_lib.is_better("fd_anime", 1.0, 2.0)
  assert not evaluator_lib.is_better("fd_anime", 3.0, 2.0)
  assert evaluator_lib.is_better("afd", 0.9, 0.8)
  assert evaluator_lib.is_better("fid", 5.0, None)
  assert not evaluator_lib.is_better("fid", float("nan"), None)


def test_held_out_source_defaults_to_the_test_split_of_the_training_source(smoke_config):
  smoke_config.data.source = "tfds:anime_faces"
  assert evaluate.heldout_source(smoke_config) == ("tfds:anime_faces", "test")
  smoke_config.data.source = "tfds:mnist:train"
  smoke_config.data.split = ""
  assert evaluate.heldout_source(smoke_config) == ("tfds:mnist", "test")
  smoke_config.data.source = "zip:/x/*.zip"
  assert evaluate.heldout_source(smoke_config) is None  # trains on every file
  smoke_config.data.split = "train"
  assert evaluate.heldout_source(smoke_config) == ("zip:/x/*.zip", "test")
  smoke_config.eval.heldout_source = "folder:/held"
  assert evaluate.heldout_source(smoke_config) == ("folder:/held", "")


def test_inception_metrics_stop_at_start_up_without_weights(tmp_path, smoke_config, monkeypatch):
  """No weight file and no network: the run stops before training and says what to fetch."""
  from gan_jax.metrics import inception  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv("GAN_JAX_INCEPTION", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

  def offline(url, out):
    raise OSError("network unreachable")
  monkeypatch.setattr(inception, "download", offline)
  smoke_config.eval.every = 2
  smoke_config.eval.metrics = "fd_anime,fid"
  with pytest.raises(ConfigError, match="pt_inception-2015-12-05-6726825d.pth.*inception_path"):
    train.train_and_evaluate(smoke_config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_inception_metrics_report_values_and_protocols(monkeypatch):
  """fid, kid, is, pr, dc through the evaluator, with a cheap stand-in for Inception's features."""
  from configs import common  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  projection = rng.normal(size=(16 * 16 * 3, 32)).astype(np.float32)

  def fake_inception(images):
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    return {"pool": x @ projection, "logits": x @ projection[:, :10]}
  monkeypatch.setattr(evaluator_lib.FeatureNetworks, "_inception_fn", lambda self: fake_inception)
  monkeypatch.setattr(evaluator_lib.FeatureNetworks, "check", lambda self, needs: None)
  options = common.evaluation(metrics="fid,kid,is,pr,dc")
  options.kid_subsets, options.kid_subset_size, options.is_splits = 5, 20, 2
  real = rng.integers(0, 256, (60, 16, 16, 3), dtype=np.uint8)
  evaluator = evaluator_lib.Evaluator(options, real, None, "test images")
  same = evaluator(real[:40], step=7)
  assert same["fid"]["values"]["fid"] < evaluator(255 - real[:40])["fid"]["values"]["fid"]
  assert same["pr"]["values"]["precision"] == 1 and same["dc"]["values"]["coverage"] > 0.5
  assert same["kid"]["protocol"] == {
      "n_fake": 40, "n_real": 60, "real": "test images", "step": 7,
      "features": evaluator.networks.protocol("inception"), "subsets": 5, "subset_size": 20,
      "kernel": "(x.y/d + 1)^3, unbiased MMD^2"}
  assert "one-domain" in same["is"]["protocol"]["note"] and same["is"]["values"]["is"] >= 1
  assert set(evaluator_lib.flatten(same)) == {
      "eval/fid", "eval/kid", "eval/kid_std", "eval/is", "eval/is_std", "eval/precision",
      "eval/recall", "eval/density", "eval/coverage"}


def test_duplicates_compute_the_real_sets_distances_once(monkeypatch):
  """The duplicates metric through the evaluator equals the collapse functions on the same
  sets, and a second evaluation reuses the real subset's within-set distances."""
  from configs import common  # pylint: disable=g-import-not-at-top
  from gan_jax.metrics import collapse  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  projection = rng.normal(size=(16 * 16 * 3, 8)).astype(np.float32)
  anime = lambda images: images.reshape(len(images), -1).astype(np.float32) / 255 @ projection
  monkeypatch.setattr(evaluator_lib.FeatureNetworks, "compute",
                      lambda self, name, images: {"anime": anime(images)})
  monkeypatch.setattr(evaluator_lib.FeatureNetworks, "check", lambda self, needs: None)
  real = rng.integers(0, 256, (50, 16, 16, 3), dtype=np.uint8)
  fake = rng.integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
  evaluator = evaluator_lib.Evaluator(common.evaluation(metrics="duplicates"), real, None, "x")
  calls = []
  counting = collapse.pixel_within_distances
  monkeypatch.setattr(collapse, "pixel_within_distances",
                      lambda images: calls.append(len(images)) or counting(images))
  first = evaluator(fake)["duplicates"]["values"]
  assert calls == [30, 30]  # the real subset, then the samples
  second = evaluator(fake)["duplicates"]["values"]
  assert calls == [30, 30, 30] and second == first
  index = np.sort(np.random.default_rng(0).choice(len(real), 30, replace=False))
  expected = collapse.duplicates_and_diversity(fake, real[index])
  expected.update({f"{k}_anime": v for k, v in collapse.feature_duplicate_rate(
      anime(fake), anime(real)[index]).items()})
  assert first == pytest.approx(expected)
