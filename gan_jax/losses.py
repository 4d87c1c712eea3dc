"""Adversarial losses.

Every loss has one signature: it maps the discriminator's raw outputs (logits,
before any sigmoid) on a real batch and on a generated batch to a `LossPair`
of scalars (d_loss, g_loss). Both players minimise their entry. The train step
uses `d_loss` in the D phase and `g_loss` in the G phase, so a loss never needs
to know which phase it is in, and adding one never touches the step.

Probabilities are never formed: log D(x) = log sigmoid(l) = -softplus(-l) and
log(1 - D(x)) = -softplus(l), exact and stable for any logit.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry


class LossPair(NamedTuple):
  """The discriminator's and the generator's loss (both minimised)."""
  d_loss: jax.Array
  g_loss: jax.Array


LossFn = Callable[[jax.Array, jax.Array], LossPair]
LOSSES: Registry[LossFn] = Registry("loss")


def _bce_d_loss(real_logits, fake_logits):
  """-[mean log D(x) + mean log(1 - D(G(z)))]: BCE with labels real=1, fake=0."""
  return (jnp.mean(jax.nn.softplus(-real_logits))
          + jnp.mean(jax.nn.softplus(fake_logits)))


@LOSSES.register("minimax")
def minimax(real_logits, fake_logits) -> LossPair:
  """The original min-max game: D maximises V, G minimises log(1 - D(G(z)))."""
  return LossPair(
      d_loss=_bce_d_loss(real_logits, fake_logits),
      g_loss=-jnp.mean(jax.nn.softplus(fake_logits)))


@LOSSES.register("non_saturating")
def non_saturating(real_logits, fake_logits) -> LossPair:
  """The lecture's algorithm: D as minimax, G maximises log D(G(z))."""
  return LossPair(
      d_loss=_bce_d_loss(real_logits, fake_logits),
      g_loss=jnp.mean(jax.nn.softplus(-fake_logits)))


@LOSSES.register("least_squares")
def least_squares(real_logits, fake_logits) -> LossPair:
  """LSGAN (a=0, b=c=1): D regresses real to 1 and fake to 0; G pushes fake to 1."""
  return LossPair(
      d_loss=0.5 * jnp.mean(jnp.square(real_logits - 1.0))
      + 0.5 * jnp.mean(jnp.square(fake_logits)),
      g_loss=0.5 * jnp.mean(jnp.square(fake_logits - 1.0)))


@LOSSES.register("wasserstein")
def wasserstein(real_logits, fake_logits) -> LossPair:
  """WGAN: the critic maximises E[D(x)] - E[D(G(z))]; needs a Lipschitz constraint."""
  return LossPair(
      d_loss=jnp.mean(fake_logits) - jnp.mean(real_logits),
      g_loss=-jnp.mean(fake_logits))


@LOSSES.register("hinge")
def hinge(real_logits, fake_logits) -> LossPair:
  """Hinge loss (SAGAN/SNGAN/BigGAN): margins of 1 for D, linear for G."""
  return LossPair(
      d_loss=jnp.mean(jax.nn.relu(1.0 - real_logits))
      + jnp.mean(jax.nn.relu(1.0 + fake_logits)),
      g_loss=-jnp.mean(fake_logits))


def get_loss(name: str) -> LossFn:
  """The loss registered under `name` (ValueError listing the valid names)."""
  return LOSSES.get(name)
