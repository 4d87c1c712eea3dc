"""The lectures' claims as experiments on toy data (gan_jax/lab.py), five seeds each.

Step counts were chosen so that every assertion holds on seeds 0-4 (the ones
run here) and, for the mode-coverage tests, on seeds 0-9 (measured:
benchmarks/toy_lab.md). All seeds of one experiment train at once (vmap).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import toy_ring
from gan_jax import lab
from gan_jax.data import toy

SEEDS = range(5)


def ring_config(**overrides):
  config = toy_ring.get_config()
  for field, value in overrides.items():
    *sections, key = field.split("__")
    node = config
    for section in sections:
      node = node[section]
    node[key] = value
  return config


@pytest.mark.parametrize("regulariser", [
    {"model__d_spectral_norm": True},                                   # SN layers in D
    {"penalty__use": "wgan_gp", "penalty__wgan_gp__weight": 1.0},       # gradient penalty
])
def test_non_saturating_gan_with_sn_or_gp_covers_the_ring(regulariser):
  config = ring_config(**regulariser)
  states, metrics = lab.train_seeds(config, SEEDS, num_steps=2000)
  assert np.all(np.isfinite(np.asarray(metrics["d_loss"])))
  scores = lab.mode_metrics_seeds(config, states)
  assert np.all(scores["modes_covered"] >= 7), scores
  assert np.all(scores["high_quality"] > 0.1), scores


def _critic_lipschitz(config, states):
  """Per seed: (empirical Lipschitz constant of D over the plane and the fakes, W estimate)."""
  mixture = toy.get_mixture("ring8")
  fakes = lab.generate_seeds(config, states, 512, ema=False)
  real = mixture.sample(jax.random.PRNGKey(1), 2048)
  out = []
  for i in range(len(fakes)):
    state = jax.tree.map(lambda x, i=i: x[i], states)
    d_fn = lab.discriminator_fn(config, state.d_params, state.d_stats)
    points = jnp.concatenate([lab.box_points(3.0, 41), jnp.asarray(fakes[i])])
    w = jnp.mean(d_fn(real)) - jnp.mean(d_fn(jnp.asarray(fakes[i])))
    out.append((float(lab.empirical_lipschitz(d_fn, points)), float(w)))
  return np.array(out)


def _train_critic(config, chunks=(200, 200, 400)):
  """[(Lipschitz, W) per seed] after each chunk of critic updates against a frozen G."""
  mixture = toy.get_mixture("ring8")
  states, history = None, []
  for steps in chunks:
    states = lab.fit_discriminator(config, mixture, None, steps, SEEDS, states)
    history.append(_critic_lipschitz(config, states))
  return np.array(history)  # (chunks, seeds, 2)


def test_unconstrained_wasserstein_critic_runs_away():
  history = _train_critic(ring_config(loss__name="wasserstein"))
  lipschitz, w = history[..., 0], history[..., 1]
  assert np.all(lipschitz[1] > 3 * lipschitz[0]) and np.all(lipschitz[2] > 3 * lipschitz[1])
  assert np.all(w[2] > 3 * w[0]) and np.all(lipschitz[2] > 1e3)


def test_clipped_critic_stays_under_its_weight_bound():
  config = ring_config(loss__name="wasserstein", constraint__d="weight_clip")
  history = _train_critic(config)
  # |w| <= c elementwise bounds each m x n kernel's norm by c * sqrt(m n); activations are
  # 1-Lipschitz, so D's Lipschitz constant is below the product.
  widths = [2] + [config.model.d_width] * config.model.d_depth + [1]
  bound = math.prod(0.01 * math.sqrt(m * n) for m, n in zip(widths, widths[1:]))
  assert np.all(history[..., 0] <= bound) and np.all(history[..., 0] > 0)
  assert np.all(history[-1, :, 0] <= 1.5 * history[0, :, 0])  # saturated, not growing


def test_gradient_penalty_keeps_the_critic_near_1_lipschitz():
  history = _train_critic(ring_config(loss__name="wasserstein", penalty__use="wgan_gp"))
  assert np.all(history[..., 0] < 2.0) and np.all(history[-1, :, 0] > 0.8)


def test_spectral_norm_layers_keep_the_critic_near_1_lipschitz():
  history = _train_critic(ring_config(loss__name="wasserstein", model__d_spectral_norm=True))
  assert np.all(history[-1, :, 0] <= 1.05) and np.all(history[-1, :, 0] > 0.6)


def test_spectral_norm_projection_bounds_the_critic_by_1():
  config = ring_config(loss__name="wasserstein", constraint__d="spectral_norm_projection")
  history = _train_critic(config)
  assert np.all(history[..., 0] <= 1.0 + 1e-3) and np.all(history[-1, :, 0] > 0.3)


def test_discriminator_approaches_its_optimum_and_the_jsd():
  """G frozen at N(1.5, 0.5^2), data N(0, 1): D -> p_data / (p_data + p_G), V -> -2 log 2 + 2 JSD."""
  base = ring_config(train__batch_size=1024)
  config, data = lab.one_d_config(base, "minimax", 0.0, 1.0)
  states = lab.fit_discriminator(config, data, lab.affine_generator_params(1.5, 0.5), 2000,
                                 SEEDS)
  x = np.linspace(-4.0, 4.0, 2001)
  p_data, p_g = lab.gaussian_pdf(x, 0.0, 1.0), lab.gaussian_pdf(x, 1.5, 0.5)
  d_star = p_data / (p_data + p_g)
  overlap = np.minimum(p_data, p_g) > 0.02  # where D* is neither ~0 nor ~1
  dx = x[1] - x[0]
  v_star = -2 * math.log(2) + 2 * lab.jensen_shannon(p_data, p_g, dx)
  for i in SEEDS:
    state = jax.tree.map(lambda a, i=i: a[i], states)
    d_fn = lab.discriminator_fn(config, state.d_params, state.d_stats, (1,))
    logits = d_fn(jnp.asarray(x[:, None], jnp.float32))
    d = np.asarray(jax.nn.sigmoid(logits), np.float64)
    error = np.abs(d - d_star)
    assert np.sum(error * (p_data + p_g) / 2) * dx < 0.025  # mean error where the data are
    assert np.max(error[overlap]) < 0.1
    log_d = np.asarray(jax.nn.log_sigmoid(logits), np.float64)
    log_not_d = np.asarray(jax.nn.log_sigmoid(-logits), np.float64)
    v = np.sum(p_data * log_d + p_g * log_not_d) * dx
    assert abs(v - v_star) < 0.01


def test_jsd_stays_log2_while_w1_shrinks_and_minimax_gradients_vanish():
  """Data N(0, 0.02^2), G frozen at N(theta, 0.02^2): disjoint for every theta here."""
  base = ring_config(train__batch_size=128)
  data = None
  rows = []
  for theta in (4.0, 1.0, 0.25):
    g_params = lab.affine_generator_params(theta, 0.02)
    config, data = lab.one_d_config(base, "minimax", 0.0, 0.02)
    states = lab.fit_discriminator(config, data, g_params, 500, SEEDS)
    w_config, _ = lab.one_d_config(base, "wasserstein", 0.0, 0.02)
    w_config.penalty.use = "wgan_gp"
    w_states = lab.fit_discriminator(w_config, data, g_params, 1000, SEEDS)
    real = data.sample(jax.random.PRNGKey(7), 4096)
    fake = theta + 0.02 * jax.random.normal(jax.random.PRNGKey(8), (4096, 1))
    for i in SEEDS:
      state = jax.tree.map(lambda a, i=i: a[i], states)
      w_state = jax.tree.map(lambda a, i=i: a[i], w_states)
      d_fn = lab.discriminator_fn(config, state.d_params, state.d_stats, (1,))
      critic = lab.discriminator_fn(w_config, w_state.d_params, w_state.d_stats, (1,))
      jsd = (float(lab.minimax_objective(d_fn(real), d_fn(fake))) + 2 * math.log(2)) / 2
      w1 = float(jnp.mean(critic(real)) - jnp.mean(critic(fake)))
      minimax = float(lab.generator_gradient_norm(config, state, "minimax", real))
      non_saturating = float(lab.generator_gradient_norm(config, state, "non_saturating", real))
      rows.append((theta, jsd, w1, minimax, non_saturating))
  rows = np.array(rows).reshape(3, len(SEEDS), 5)
  np.testing.assert_allclose(rows[..., 1], math.log(2), atol=0.01)   # JSD = log 2 throughout
  thetas = rows[:, 0, 0]
  assert np.all(rows[..., 2] > 0.8 * thetas[:, None])                # W1 estimate ~ theta
  assert np.all(rows[..., 2] < 1.3 * thetas[:, None])
  assert np.all(rows[:-1, :, 2] > rows[1:, :, 2])                    # ... and shrinks with it
  assert np.all(rows[..., 3] < 1e-3 * rows[..., 4])                  # minimax G gets no signal
