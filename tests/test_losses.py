"""Adversarial losses: hand-computed values, BCE equivalence, gradient behaviour."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import losses

REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])


def softplus(x):
  return math.log1p(math.exp(x))


def mean(*xs):
  return sum(xs) / len(xs)


# (d_loss, g_loss) at REAL, FAKE worked out by hand from each loss's definition.
EXPECTED = {
    "minimax": (mean(softplus(-2.0), softplus(1.0)) + mean(softplus(0.5), softplus(-3.0)),
                -mean(softplus(0.5), softplus(-3.0))),
    "non_saturating": (mean(softplus(-2.0), softplus(1.0)) + mean(softplus(0.5), softplus(-3.0)),
                       mean(softplus(-0.5), softplus(3.0))),
    # 0.5 * mean((2-1)^2, (-1-1)^2) + 0.5 * mean(0.5^2, 3^2); 0.5 * mean((0.5-1)^2, (-3-1)^2)
    "least_squares": (0.5 * 2.5 + 0.5 * 4.625, 0.5 * 8.125),
    # mean(fake) - mean(real); -mean(fake)
    "wasserstein": (-1.25 - 0.5, 1.25),
    # mean(relu(1-2), relu(1+1)) + mean(relu(1+0.5), relu(1-3)); -mean(fake)
    "hinge": (1.0 + 0.75, 1.25),
    # f-GAN: d = E_fake[f*(g(v))] - E_real[g(v)], g = -E_fake[g(v)] (Nowozin et al., Table 2).
    "f_kl": (mean(math.exp(-0.5), math.exp(-4.0)) - 0.5, 1.25),
    "f_reverse_kl": (mean(-0.5, -4.0) + mean(math.exp(-2.0), math.exp(1.0)),
                     mean(math.exp(-0.5), math.exp(3.0))),
    "f_pearson": (mean(0.0625 + 0.5, 2.25 - 3.0) - 0.5, 1.25),
    "f_squared_hellinger": (
        mean(math.exp(0.5) - 1, math.exp(-3.0) - 1) - mean(1 - math.exp(-2.0), 1 - math.exp(1.0)),
        -mean(1 - math.exp(-0.5), 1 - math.exp(3.0))),
    "f_jensen_shannon": (
        mean(softplus(0.5), softplus(-3.0)) - math.log(2) - mean(math.log(2) - softplus(-2.0),
                                                                 math.log(2) - softplus(1.0)),
        -mean(math.log(2) - softplus(-0.5), math.log(2) - softplus(3.0))),
    # RpGAN: real - fake = [1.5, 2.0]
    "relativistic": (mean(softplus(-1.5), softplus(-2.0)), mean(softplus(1.5), softplus(2.0))),
    # RaGAN: mean(fake) = -1.25, mean(real) = 0.5: real + 1.25 = [3.25, 0.25], fake - 0.5 = [0, -3.5]
    "relativistic_average": (
        mean(softplus(-3.25), softplus(-0.25)) + mean(softplus(0.0), softplus(-3.5)),
        mean(softplus(0.0), softplus(3.5)) + mean(softplus(3.25), softplus(0.25))),
    # The auto-encoder losses read logits as minus reconstruction errors L: L(x) = -mean(real)
    # = -0.5, L(G(z)) = 1.25. BEGAN at its default k = 0: d = L(x), g = L(G(z)).
    "began": (-0.5, 1.25),
    # EBGAN, margin 1: d = L(x) + mean(relu(1 - L_fake)) = -0.5 + mean(relu(1.5), relu(-2)).
    "ebgan": (-0.5 + 0.75, 1.25),
}


def test_every_registered_loss_has_a_hand_checked_value():
  assert sorted(EXPECTED) == losses.LOSSES.names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values(name):
  pair = losses.get_loss(name)(REAL, FAKE)
  assert isinstance(pair, losses.LossPair)
  assert pair.d_loss.shape == () and pair.g_loss.shape == ()
  np.testing.assert_allclose(pair.d_loss, EXPECTED[name][0], rtol=1e-6)
  np.testing.assert_allclose(pair.g_loss, EXPECTED[name][1], rtol=1e-6)


@pytest.mark.parametrize("name", ["minimax", "non_saturating"])
def test_d_objective_is_binary_cross_entropy(name):
  key = jax.random.PRNGKey(0)
  real, fake = jax.random.normal(key, (2, 32)) * 3
  bce = (jnp.mean(optax.sigmoid_binary_cross_entropy(real, jnp.ones_like(real)))
         + jnp.mean(optax.sigmoid_binary_cross_entropy(fake, jnp.zeros_like(fake))))
  np.testing.assert_allclose(losses.get_loss(name)(real, fake).d_loss, bce, rtol=1e-6)


# Their conjugates grow exponentially by definition (exp(v - 1), e^v - 1, e^-v):
# finite for |logit| up to ~80 in float32, tested below at 40.
EXPONENTIAL = ("f_kl", "f_reverse_kl", "f_squared_hellinger")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_losses_stay_finite_at_extreme_logits(name):
  """Computed from logits: no log(0) where D is certain (log of a sigmoid would give inf)."""
  loss = losses.get_loss(name)
  big = 40.0 if name in EXPONENTIAL else 200.0
  real, fake = jnp.array([big, -big]), jnp.array([-big, big])
  for phase in (0, 1):
    value, grads = jax.value_and_grad(lambda r, f: loss(r, f)[phase], argnums=(0, 1))(real, fake)
    assert np.isfinite(value)
    assert all(np.isfinite(g).all() for g in grads)


def test_minimax_generator_gradient_vanishes_when_d_is_confident():
  """D(G(z)) ~ 0: log(1 - D) saturates, while log D still gives a strong gradient."""
  real = jnp.full((8,), 10.0)
  fake = jnp.full((8,), -10.0)  # D(G(z)) = sigmoid(-10) ~ 4.5e-5
  grad = lambda name: jax.grad(lambda f: losses.get_loss(name)(real, f).g_loss)(fake)
  minimax, non_saturating = jnp.abs(grad("minimax")).sum(), jnp.abs(grad("non_saturating")).sum()
  assert minimax < 1e-3 * non_saturating
  # Hand values: d/dl [-softplus(l)] = -sigmoid(l); d/dl softplus(-l) = -sigmoid(-l), both / 8.
  np.testing.assert_allclose(minimax, jax.nn.sigmoid(-10.0), rtol=1e-5)
  np.testing.assert_allclose(non_saturating, jax.nn.sigmoid(10.0), rtol=1e-5)


def test_generator_objectives_agree_in_direction():
  """Both G losses decrease as D(G(z)) rises (they share the optimum, not the gradient scale)."""
  real = jnp.zeros(4)
  low, high = jnp.full((4,), -2.0), jnp.full((4,), 2.0)
  for name in ("minimax", "non_saturating", "least_squares", "wasserstein", "hinge"):
    loss = losses.get_loss(name)
    assert loss(real, high).g_loss < loss(real, low).g_loss, name


def test_unknown_loss_lists_valid_names():
  with pytest.raises(ValueError) as e:
    losses.get_loss("hinj")
  assert str(e.value) == (
      "unknown loss 'hinj'; choose from: began, ebgan, f_jensen_shannon, f_kl, f_pearson, f_reverse_kl, "
      "f_squared_hellinger, hinge, least_squares, minimax, non_saturating, relativistic, "
      "relativistic_average, wasserstein")


def test_least_squares_targets():
  loss = losses.get_loss("least_squares", real_target=1.0, fake_target=-1.0, g_target=0.0)
  pair = loss(jnp.array([1.0, 3.0]), jnp.array([-1.0, 1.0]))
  np.testing.assert_allclose(pair.d_loss, 0.5 * mean(0.0, 4.0) + 0.5 * mean(0.0, 4.0))
  np.testing.assert_allclose(pair.g_loss, 0.5 * mean(1.0, 1.0))


# P = (3/4, 1/4), Q = (1/4, 3/4) on two points {a, b}, as 4 equally weighted samples each.
def _two_point_logits(critic_a, critic_b):
  real = jnp.array([critic_a] * 3 + [critic_b])
  fake = jnp.array([critic_a] + [critic_b] * 3)
  return real, fake


@pytest.mark.parametrize("name, critic, divergence", [
    # KL: T* = f'(p/q) = 1 + log(p/q); KL(P||Q) = 3/4 log 3 + 1/4 log(1/3) = log(3) / 2.
    ("f_kl", lambda r: 1.0 + math.log(r), math.log(3.0) / 2),
    # Pearson chi2: T* = 2 (p/q - 1); chi2 = sum q (p/q - 1)^2 = 1/4 * 4 + 3/4 * 4/9 = 4/3.
    ("f_pearson", lambda r: 2.0 * (r - 1.0), 4.0 / 3.0),
])
def test_f_gan_d_objective_at_the_optimal_critic_is_the_divergence(name, critic, divergence):
  real, fake = _two_point_logits(critic(3.0), critic(1.0 / 3.0))
  np.testing.assert_allclose(-losses.get_loss(name)(real, fake).d_loss, divergence, rtol=1e-6)


def test_f_jensen_shannon_is_the_gan_objective_shifted_by_2_log_2():
  real, fake = jax.random.normal(jax.random.PRNGKey(1), (2, 16)) * 2
  np.testing.assert_allclose(losses.get_loss("f_jensen_shannon")(real, fake).d_loss,
                             losses.get_loss("minimax")(real, fake).d_loss - 2 * math.log(2),
                             rtol=1e-5)
