"""The toy lab's pieces: mixtures, their metrics, batches, plots, MLP models, and the
multi-seed trainer matching launch.py."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import toy_grid, toy_ring
from conftest import set_fields
from gan_jax import lab, latent_walks, losses, models, parallel, plots, train
from gan_jax.data import toy
from gan_jax.errors import UserError

pytestmark = pytest.mark.mesh_devices(2)  # data parallel, on 2 of the 8 CPU devices


def test_ring_and_grid_geometry():
  ring = toy.get_mixture("ring8")
  np.testing.assert_allclose(np.linalg.norm(ring.centers, axis=1), 2.0, atol=1e-12)
  angles = np.sort(np.mod(np.arctan2(ring.centers[:, 1], ring.centers[:, 0]), 2 * np.pi))
  np.testing.assert_allclose(np.diff(angles), np.pi / 4, atol=1e-12)
  grid = toy.get_mixture("grid25")
  assert grid.num_modes == 25 and set(np.unique(grid.centers)) == {-4, -2, 0, 2, 4}
  assert (ring.std, grid.std) == (0.02, 0.05)


def test_unknown_toy_dataset_lists_the_choices():
  with pytest.raises(ValueError, match="unknown toy dataset 'ring9'; choose from: grid25, ring8"):
    toy.get_mixture("ring9")


def test_samples_follow_the_mixture():
  ring = toy.get_mixture("ring8")
  x = np.asarray(ring.sample(jax.random.PRNGKey(0), 40_000))
  distances = np.linalg.norm(x[:, None] - ring.centers[None], axis=-1)
  nearest = distances.argmin(1)
  np.testing.assert_allclose(np.bincount(nearest) / len(x), 1 / 8, atol=0.01)
  offsets = x - ring.centers[nearest]
  np.testing.assert_allclose(offsets.std(0), 0.02, rtol=0.03)
  np.testing.assert_allclose(offsets.mean(0), 0.0, atol=1e-3)


def test_mode_metrics_by_hand():
  ring = toy.get_mixture("ring8")
  exact = np.repeat(ring.centers, 2500 // 8 + 1, axis=0)[:2500]
  assert toy.mode_metrics(exact, ring) == {"modes_covered": 8.0, "high_quality": 1.0}
  one_mode = np.repeat(ring.centers[:1], 2500, axis=0)
  assert toy.mode_metrics(one_mode, ring) == {"modes_covered": 1.0, "high_quality": 1.0}
  # 20 of 2,500 high-quality samples cover a mode, 19 do not; 3 std is inside, beyond is not.
  far = np.full((2500, 2), 50.0)
  samples = far.copy()
  samples[:20] = ring.centers[0] + [3 * 0.02 - 1e-9, 0]
  samples[20:39] = ring.centers[1]
  samples[39:100] = ring.centers[2] + [3 * 0.02 + 1e-6, 0]
  metrics = toy.mode_metrics(samples, ring)
  assert metrics == {"modes_covered": 1.0, "high_quality": 39 / 2500}
  wider = toy.mode_metrics(samples, ring, within_stds=4)  # the third group is now inside
  assert wider == {"modes_covered": 2.0, "high_quality": 100 / 2500}


def test_mode_imbalance_by_hand():
  ring = toy.get_mixture("ring8")
  assert toy.mode_imbalance(np.repeat(ring.centers, 3, axis=0), ring) == 0.0
  assert toy.mode_imbalance(np.repeat(ring.centers[:1], 10, axis=0), ring) == pytest.approx(0.875)
  # Shares 1/2, 1/4, 1/4 of the high-quality samples (the far one is ignored): TV from 1/8
  # each is (3/8 + 1/8 + 1/8 + 5 * 1/8) / 2 = 0.625.
  samples = np.concatenate([ring.centers[[0, 0, 1, 2]], [[50.0, 50.0]]])
  assert toy.mode_imbalance(samples, ring) == pytest.approx(0.625)
  assert np.isnan(toy.mode_imbalance(np.full((4, 2), 50.0), ring))


@pytest.mark.mesh_devices(8)
def test_batches_are_a_function_of_seed_and_step_on_any_number_of_devices():
  ring = toy.get_mixture("ring8")
  expected = toy.toy_batch(ring, 3, jnp.int32(7), 2, 16)
  assert expected.shape == (2, 16, 2)
  feeder = toy.ToyFeeder(ring, batch_size=16, d_steps=2, seed=3, mesh=parallel.make_mesh())
  batch = feeder.batch(7)
  assert len(batch.sharding.device_set) == len(jax.devices())
  # Same draws (XLA may fuse the sharded program differently: last-bit differences).
  np.testing.assert_allclose(np.asarray(batch), np.asarray(expected), rtol=1e-6, atol=1e-7)
  assert not np.array_equal(np.asarray(feeder.batch(8)), np.asarray(expected))
  other_seed = toy.ToyFeeder(ring, batch_size=16, d_steps=2, seed=4, mesh=parallel.make_mesh())
  assert not np.array_equal(np.asarray(other_seed.batch(7)), np.asarray(expected))


def test_scatter_plot_puts_points_where_they_are():
  image = plots.scatter(np.array([[1.0, 1.0], [np.nan, 0.0], [100.0, -100.0]]), extent=2.0,
                        size=101, centers=np.array([[-1.0, 0.0]]))
  assert image.shape == (101, 101, 3) and image.dtype == np.uint8
  blue = plots._SAMPLES  # pylint: disable=protected-access
  assert tuple(image[25, 75]) == blue           # (1, 1): right half, upper half (y up)
  assert tuple(image[100, 100]) == blue         # far outside: clipped to the corner
  assert tuple(image[50, 25]) == plots._CENTERS  # pylint: disable=protected-access
  assert tuple(image[10, 10]) == (255, 255, 255)


def test_mlp_shapes_and_the_affine_generator():
  config = toy_ring.get_config()
  g, d = models.build_models(config.model, (2,))
  variables = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 16)), train=False)
  assert g.apply(variables, jnp.ones((5, 16)), train=True).shape == (5, 2)
  d_variables = d.init(jax.random.PRNGKey(1), jnp.zeros((1, 2)), train=False)
  assert d.apply(d_variables, jnp.ones((5, 2)), train=True).shape == (5,)
  config, _ = lab.one_d_config(config)
  g, _ = models.build_models(config.model, (1,))
  params = lab.affine_generator_params(mean=1.5, std=0.5)
  z = jnp.array([[-2.0], [0.0], [4.0]])
  np.testing.assert_allclose(g.apply({"params": params}, z, train=False)[:, 0],
                             [0.5, 1.5, 3.5])
  with pytest.raises(ValueError, match="g_depth and model.d_depth must be >= 0"):
    config.model.d_depth = -1
    models.build_models(config.model, (1,))


def test_spectrally_normalised_mlp_discriminator_is_1_lipschitz_at_any_weight_scale():
  config = toy_ring.get_config()
  config.model.d_spectral_norm = True
  _, d = models.build_models(config.model, (2,))
  variables = d.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)), train=False)
  x = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
  lipschitz = []
  for scale in (1.0, 100.0):  # W / sigma(W) does not change when every kernel is scaled
    params = jax.tree_util.tree_map_with_path(
        lambda path, w: w * scale if "kernel" in jax.tree_util.keystr(path) else w,
        variables["params"])
    scaled = {"params": params, "batch_stats": variables["batch_stats"]}
    for _ in range(30):  # power iteration converges over train-mode calls, as in training
      _, updates = d.apply(scaled, x, train=True, mutable=["batch_stats"])
      scaled = {**scaled, **updates}
    d_fn = lambda v, scaled=scaled: d.apply(scaled, v, train=False)
    lipschitz.append(float(lab.empirical_lipschitz(d_fn, lab.box_points(3.0, 41))))
  assert 0 < lipschitz[0] <= 1.0 + 1e-3
  np.testing.assert_allclose(lipschitz[1], lipschitz[0], rtol=1e-3)


def test_image_models_refuse_point_data():
  config = toy_ring.get_config()
  config.model.name = "dcgan"
  with pytest.raises(train.ConfigError, match="DCGAN needs square images"):
    train.validate_config(config)


def test_unknown_toy_source_fails_validation():
  config = toy_ring.get_config()
  config.data.source = "toy:spiral"
  with pytest.raises(train.ConfigError, match="unknown toy dataset 'spiral'"):
    train.validate_config(config)


def test_train_seeds_is_the_run_launch_makes(tmp_path):
  config = toy_ring.get_config("smoke")
  config.penalty.use = "r1"  # penalties and the lazy interval go through both paths
  config.penalty.r1.every = 2
  config.seed = 5
  config.log.diagnostics = False  # not part of the comparison; saves a compile
  config.train.iterations_per_call = 5  # launch's scanned calls (the draw compiled in) too
  state = train.train_and_evaluate(config, str(tmp_path))
  states, metrics = lab.train_seeds(config, [5, 6])
  assert metrics["d_loss"].shape == (2, config.train.num_steps)
  assert int(states.step[0]) == config.train.num_steps
  for ours, theirs in zip(jax.tree.leaves(state.g_params),
                          jax.tree.leaves(jax.tree.map(lambda x: x[0], states.g_params))):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
  other = jax.tree.leaves(jax.tree.map(lambda x: x[1], states.g_params))
  assert not np.allclose(jax.tree.leaves(state.g_params)[0], other[0])


def test_a_toy_run_writes_scatter_plots_and_mode_metrics(tmp_path):
  config = toy_grid.get_config("smoke")
  train.train_and_evaluate(config, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [10, 20]  # one line per step, metrics and scores merged
  assert all(0 <= r["toy/modes_covered"] <= 25 and 0 <= r["toy/high_quality"] <= 1 for r in rows)
  assert all("d_loss" in r and "diag/w_estimate" in r for r in rows)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  picture = np.asarray(Image.open(tmp_path / "samples" / "step_0000020.png"))
  assert picture.shape == (512, 512, 3)
  assert np.any(np.all(picture == plots._SAMPLES, axis=-1))  # pylint: disable=protected-access
  assert np.any(np.all(picture == plots._REFERENCE, axis=-1))  # pylint: disable=protected-access
  with pytest.raises(UserError, match="latent walks draw images; toy runs plot their points"):
    latent_walks.latent_walks(str(tmp_path), "interpolate", str(tmp_path / "walk.png"))


CONSTRAINT_CHOICES = [{}, {"constraint.d": "weight_clip"},
                      {"constraint.d": "spectral_norm_projection"},
                      {"model.d_spectral_norm": True}]
PENALTY_CHOICES = ["", "wgan_gp", "dragan", "r1", "r2"]


@pytest.mark.parametrize("index, loss", list(enumerate(sorted(losses.LOSSES.names()))))
def test_every_loss_trains_the_ring_with_a_constraint_and_a_penalty(index, loss):
  """Each loss with a rotating (constraint, penalty): every constraint and penalty is met
  by several losses here; benchmarks/toy_sweep.md runs all 240 combinations from the CLI."""
  config = toy_ring.get_config("smoke")
  config.loss.name = loss
  if loss in losses.AUTOENCODER_LOSSES:  # they need BEGAN's auto-encoder D (and it them)
    config.model.name = "began"
  constraint = CONSTRAINT_CHOICES[index % len(CONSTRAINT_CHOICES)]
  set_fields(config, constraint)
  penalty = PENALTY_CHOICES[index % len(PENALTY_CHOICES)]
  config.penalty.use = penalty
  states, metrics = lab.train_seeds(config, [0], num_steps=30)
  assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())
  assert float(jnp.abs(metrics["d_loss"][0, -1] - metrics["d_loss"][0, 0])) > 0  # it moved
  if penalty:
    assert float(jnp.max(metrics[f"{penalty}_penalty"])) > 0
  kernels = [x[0] for path, x in jax.tree_util.tree_leaves_with_path(states.d_params)
             if "kernel" in jax.tree_util.keystr(path)]
  if constraint.get("constraint.d") == "weight_clip":
    assert max(float(jnp.max(jnp.abs(k))) for k in kernels) <= 0.01
  if constraint.get("constraint.d") == "spectral_norm_projection":
    # Power iteration lags behind Adam(b1=0) at 1e-3 by ~1% (constraints.py documents it).
    assert max(float(np.linalg.svd(np.asarray(k), compute_uv=False)[0]) for k in kernels) <= 1.02


def test_toy_ring_composes_every_kind_of_piece_from_the_command_line(tmp_path):
  from test_train import launch  # pylint: disable=g-import-not-at-top
  result = launch("--config=configs/toy_ring.py:smoke", f"--workdir={tmp_path}",
                  "--config.loss.name=wasserstein", "--config.penalty.use=wgan_gp,r1",
                  "--config.penalty.r1.every=4", "--config.constraint.d=spectral_norm_projection",
                  "--config.model.d_spectral_norm=True", "--config.model.g_spectral_norm=True",
                  "--config.optim.name=rmsprop")
  assert result.returncode == 0, result.stderr[-2000:]
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert rows[-1]["step"] == 20 and rows[-1]["wgan_gp_penalty"] > 0
  assert "toy/modes_covered" in rows[-1]
  assert (tmp_path / "samples" / "step_0000020.png").exists()


def test_long_lab_runs_undo_only_the_xla_flags_that_are_set(monkeypatch):
  """jit_long_run's options: XLA's default for each flag XLA_FLAGS names (the suite's all
  three), and the optimisation level always; no option for a flag nobody set, so an XLA
  without that flag still compiles."""
  # pylint: disable=protected-access
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false --xla_foo=1")
  assert lab._xla_cpu_defaults() == {"xla_backend_optimization_level": 3,
                                     "xla_cpu_use_fusion_emitters": True}
  monkeypatch.delenv("XLA_FLAGS")
  assert lab._xla_cpu_defaults() == {"xla_backend_optimization_level": 3}
  from conftest import TEST_XLA_FLAGS  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("XLA_FLAGS", TEST_XLA_FLAGS)
  assert lab._xla_cpu_defaults() == lab._XLA_CPU_DEFAULTS
