"""BEGAN and EBGAN: the auto-encoder discriminator, their losses and BEGAN's equilibrium
controller."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import began as began_config
from configs import dcgan, toy_ring
from gan_jax import diagnostics, lab, latents, losses, train
from gan_jax.models import began
from gan_jax.step import BEGAN_K
from test_step import same
from test_train import read_metrics, train_straight_and_resumed

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def _toy_config(**loss_options):
  """The toy ring with BEGAN's MLP auto-encoder D and the began loss."""
  config = toy_ring.get_config()
  config.model.name = "began"
  config.loss.name = "began"
  config.loss.began.update(loss_options)
  return config


def _init(config):
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  state = jax.jit(train.make_init(config, g, d, g_tx, d_tx))()
  return train.make_step(config, g, d, g_tx, d_tx), state


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("shape", [(16, 16, 3), (2,)])
def test_logits_are_minus_the_reconstruction_error(kind, shape):
  d = began.Discriminator(example_shape=shape, width=8, embed_dim=4, reconstruction=kind)
  x = jax.random.normal(jax.random.key(0), (3, *shape))
  variables = d.init(jax.random.key(1), x, train=False)
  reconstruction = d.apply(variables, x, method="reconstruct")
  assert reconstruction.shape == x.shape
  diff = np.asarray(x - reconstruction).reshape(3, -1)
  expected = np.mean(np.abs(diff) if kind == "l1" else diff**2, axis=1)
  np.testing.assert_allclose(d.apply(variables, x, train=True), -expected, rtol=1e-5)


def test_image_autoencoder_shapes_and_widths():
  """64x64: an 8x8 base map, three nearest-neighbour doublings, the encoder widening to 4n."""
  g, d = began.build_began(began_config.get_config().model, (64, 64, 3))
  z = jnp.zeros((2, 64))
  g_vars = g.init(jax.random.key(0), z, train=False)
  assert g.apply(g_vars, z, train=False).shape == (2, 64, 64, 3)
  d_vars = d.init(jax.random.key(0), jnp.zeros((2, 64, 64, 3)), train=False)
  encoder = d_vars["params"]["encoder"]
  assert encoder["Dense_0"]["kernel"].shape == (8 * 8 * 4 * 64, 64)
  assert d_vars["params"]["decoder"]["Dense_0"]["kernel"].shape == (64, 8 * 8 * 64)
  # G is D's decoder architecture (z and the code are both 64 here): 9 convs, 4 levels.
  shapes = lambda tree: jax.tree.map(jnp.shape, tree)
  assert shapes(d_vars["params"]["decoder"]) == shapes(g_vars["params"]["ImageDecoder_0"])
  assert len(d_vars["params"]["decoder"]) == 1 + 9


@pytest.mark.parametrize("shape, message", [
    ((8, 8, 3), "power of two >= 16"), ((24, 24, 3), "power of two >= 8"),
    ((16, 8, 3), "square images"), ((4, 4), "square images or flat points")])
def test_unsupported_shapes_are_refused(shape, message):
  with pytest.raises(ValueError, match=message):
    began.build_began(began_config.get_config().model, shape)


def test_spectral_norm_options_are_refused_not_ignored():
  config = _toy_config()
  config.model.d_spectral_norm = True
  with pytest.raises(train.ConfigError, match="model.d_spectral_norm: BEGAN's layers have no"):
    train.validate_config(config)


def test_began_and_ebgan_losses_hand_checked():
  real, fake = jnp.array([-0.2, -0.4]), jnp.array([-0.5, -0.7])  # L(x) 0.3, L(G(z)) 0.6
  pair = losses.get_loss("began")(real, fake, k=0.25)
  np.testing.assert_allclose([pair.d_loss, pair.g_loss], [0.3 - 0.25 * 0.6, 0.6], rtol=1e-6)
  assert float(losses.get_loss("began")(real, fake).d_loss) == pytest.approx(0.3)  # k = 0
  pair = losses.get_loss("ebgan", margin=0.6)(real, fake)
  # D: L(x) + mean max(0, 0.6 - L): the fake with L = 0.7 is past the margin.
  np.testing.assert_allclose([pair.d_loss, pair.g_loss], [0.3 + 0.05, 0.6], rtol=1e-6)


def test_equilibrium_moves_k_by_the_balance_and_reports_convergence():
  config = _toy_config(gamma=0.5, lambda_k=0.1, k0=0.2)
  step, state = _init(config)
  assert float(state.d_stats[BEGAN_K]) == pytest.approx(0.2)
  batch = jax.random.normal(jax.random.key(0), (1, 64, 2))
  new_state, metrics = jax.jit(step)(state, batch)
  real_error, fake_error = -float(metrics["d_real"]), -float(metrics["d_fake"])
  balance = 0.5 * real_error - fake_error
  assert float(metrics["began_k"]) == pytest.approx(0.2)
  assert float(new_state.d_stats[BEGAN_K]) == pytest.approx(0.2 + 0.1 * balance, rel=1e-5)
  assert float(metrics["began_convergence"]) == pytest.approx(real_error + abs(balance), rel=1e-5)
  # D's loss is L(x) - k L(G(z)) with the k before the update.
  assert float(metrics["d_loss"]) == pytest.approx(real_error - 0.2 * fake_error, rel=1e-5)
  # k stays in [0, 1]: a huge lambda_k clips it to the end the balance points at.
  step, state = _init(_toy_config(gamma=0.5, lambda_k=1e6, k0=0.2))
  new_state, _ = jax.jit(step)(state, batch)
  assert float(new_state.d_stats[BEGAN_K]) == (1.0 if balance > 0 else 0.0)


def test_k_zero_makes_the_d_update_ignore_the_fakes():
  """With k = 0, D only learns to reconstruct the reals: its update is the same whatever G
  makes; with k > 0 it is not."""
  for k0, equal in ((0.0, True), (0.5, False)):
    config = _toy_config(k0=k0, lambda_k=0.0)
    step, state = _init(config)
    real = jax.random.normal(jax.random.key(0), (64, 2))
    key = jax.random.key(1)
    other_g = jax.tree.map(lambda x: 3.0 * x + 1.0, state.g_params)
    first, _ = step.d_update(state, real, key)
    second, _ = step.d_update(state.replace(g_params=other_g), real, key)
    assert same(first.d_params, second.d_params) == equal


@pytest.mark.parametrize("loss, model, message", [
    ("began", "dcgan", "no auto-encoder D: use model.name='began'"),
    ("ebgan", "mlp", "no auto-encoder D"),
    ("hinge", "began", "cannot use; choose from: began, ebgan"),
])
def test_autoencoder_losses_and_models_come_together(loss, model, message):
  config = dcgan.get_config("smoke") if model == "dcgan" else toy_ring.get_config()
  config.model.name = model
  config.loss.name = loss
  with pytest.raises(train.ConfigError, match=message):
    train.validate_config(config)


@pytest.mark.parametrize("options, message", [
    ({"gamma": 0.0}, "gamma > 0"), ({"k0": 1.5}, r"k0 in \[0, 1\]"),
    ({"lambda_k": -1.0}, "lambda_k >= 0")])
def test_bad_equilibrium_options_are_refused(options, message):
  config = _toy_config(**options)
  with pytest.raises(train.ConfigError, match=message):
    train.validate_config(config)


def test_an_unknown_equilibrium_option_is_refused():
  config = _toy_config()
  config.loss.began.unlock()
  config.loss.began.gama = 0.3
  with pytest.raises(train.ConfigError, match="unknown loss.began option.*gama.*gamma, lambda_k, k0"):
    train.validate_config(config)


def test_began_recipe_trains_logs_and_resumes_exactly(tmp_path, face_data, cache_dir):
  config = began_config.get_config("smoke")
  config.data.source, config.data.cache_dir = face_data, cache_dir
  # Let k move visibly in 3 steps (from 0, k first stays clipped there while G's images
  # reconstruct worse than gamma times the reals').
  config.loss.began.update(lambda_k=0.05, k0=0.5)
  straight, resumed = train_straight_and_resumed(config, tmp_path, total=3, first=2)
  assert same(straight, resumed)
  rows = read_metrics(tmp_path / "straight")
  ks = [row["began_k"] for row in rows]
  assert ks[0] == 0.5 and len(set(ks)) == 3  # k moves every iteration, from k0
  assert all(np.isfinite(row["began_convergence"]) for row in rows)
  assert float(straight.d_stats[BEGAN_K]) not in ks  # the state holds the next iteration's k


def test_began_convergence_measure_falls_while_g_collapses_on_the_ring():
  """BEGAN's M_global = L(x) + |gamma L(x) - L(G(z))| is meant to fall as training
  converges. On the ring (the paper's gamma 0.5 and lambda_k 0.001) it falls while G
  covers at most one of the 8 modes: it tracks D's reconstruction of the data, not G's
  coverage. Measured over 1,000 iterations, seeds 0-9 trained together (vmapped) and
  seeds 0-3 each alone (2026-11-23): M fell 2.1-5.7x, G covered 0-1 modes, k ended at 0
  except for seed 0 alone, where the controller engaged (k 0.11, M 2.1x). Seed 0 alone
  here, the weakest of those runs; benchmarks/began_toy.md: 7-11x after 2,000 iterations."""
  config = _toy_config()
  states, metrics = lab.train_seeds(config, [0], num_steps=1000)
  convergence = np.asarray(metrics["began_convergence"])
  start, end = convergence[:, :50].mean(axis=1), convergence[:, -100:].mean(axis=1)
  assert np.all(end < start / 1.5), (start, end)
  assert np.all(lab.mode_metrics_seeds(config, states)["modes_covered"] <= 1)
  ks = np.asarray(states.d_stats[BEGAN_K])
  assert np.all((ks >= 0) & (ks < 0.2)), ks  # the controller stays near its start at 0


def test_diagnostics_leave_out_the_accuracy_an_autoencoder_d_has_no_threshold_for():
  config = _toy_config()
  g, d = train.make_models(config)
  _, state = _init(config)
  real = jax.random.normal(jax.random.key(0), (16, 2))
  out = diagnostics.discriminator_diagnostics(g, d, latents.get_latent_sampler("gaussian"),
                                              config.model.latent_dim, state, real,
                                              jax.random.key(1))
  assert "diag/d_accuracy" not in out and np.isfinite(float(out["diag/w_estimate"]))


def test_bfloat16_autoencoder_convolves_in_bfloat16_and_scores_in_float32():
  """Under mixed precision (the step casts params and images to bf16) D's convolutions run
  in bf16 and its reconstruction error is taken in float32, close to the fp32 value."""
  d = began.Discriminator(example_shape=(16, 16, 3), width=8, embed_dim=8)
  x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3), minval=-1, maxval=1)
  params = d.init(jax.random.key(1), x, train=False)["params"]
  half = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
  apply = lambda p, x: d.apply({"params": p}, x, train=True)
  jaxpr = str(jax.make_jaxpr(apply)(half, x.astype(jnp.bfloat16)))
  convs = [line for line in jaxpr.splitlines() if "conv_general_dilated" in line]
  assert convs and all("bf16[" in line for line in convs)
  logits = apply(half, x.astype(jnp.bfloat16))
  assert logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, apply(params, x), rtol=0.05)
