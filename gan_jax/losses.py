"""Adversarial losses.

Every loss has one signature: it maps the discriminator's raw outputs (logits,
before any sigmoid) on a real batch and on a generated batch to a `LossPair`
of scalars (d_loss, g_loss). Both players minimise their entry. The train step
uses `d_loss` in the D phase and `g_loss` in the G phase, so a loss never needs
to know which phase it is in, and adding one never touches the step.

Probabilities are never formed: log D(x) = log sigmoid(l) = -softplus(-l) and
log(1 - D(x)) = -softplus(l), exact and stable for any logit.
"""

import functools
import math
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
def least_squares(real_logits, fake_logits, *, real_target: float = 1.0,
                  fake_target: float = 0.0, g_target: float = 1.0) -> LossPair:
  """LSGAN: D regresses real to b=real_target and fake to a=fake_target; G pushes fake to c=g_target.

  The defaults (a, b, c) = (0, 1, 1) are the paper's "0-1 binary coding";
  (-1, 1, 0) minimises the Pearson chi2 divergence.
  """
  return LossPair(
      d_loss=0.5 * jnp.mean(jnp.square(real_logits - real_target))
      + 0.5 * jnp.mean(jnp.square(fake_logits - fake_target)),
      g_loss=0.5 * jnp.mean(jnp.square(fake_logits - g_target)))


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


# f-GAN (Nowozin et al., 2016): D maximises E_data[g(v)] - E_G[f*(g(v))], a
# variational lower bound on the f-divergence D_f(P_data || P_G), where g is
# the output activation and f* the convex conjugate of f. Each entry is
# (g(v), f*(g(v))) in a form stable for any logit v. G uses the paper's
# recommended alternative: maximise E_G[g(v)].
_F_DIVERGENCES = {
    "kl": (lambda v: v, lambda v: jnp.exp(v - 1.0)),
    "reverse_kl": (lambda v: -jnp.exp(-v), lambda v: v - 1.0),
    "pearson": (lambda v: v, lambda v: 0.25 * jnp.square(v) + v),
    "squared_hellinger": (lambda v: 1.0 - jnp.exp(-v), lambda v: jnp.expm1(v)),
    "jensen_shannon": (lambda v: math.log(2.0) - jax.nn.softplus(-v),
                       lambda v: jax.nn.softplus(v) - math.log(2.0)),
}


def f_gan(real_logits, fake_logits, *, divergence: str) -> LossPair:
  """f-GAN loss for `divergence`; -d_loss estimates D_f(P_data || P_G) at the optimal D."""
  activation, conjugate = _F_DIVERGENCES[divergence]
  return LossPair(
      d_loss=jnp.mean(conjugate(fake_logits)) - jnp.mean(activation(real_logits)),
      g_loss=-jnp.mean(activation(fake_logits)))


for _name in _F_DIVERGENCES:
  LOSSES.register(f"f_{_name}")(functools.partial(f_gan, divergence=_name))


@LOSSES.register("relativistic")
def relativistic(real_logits, fake_logits) -> LossPair:
  """RpGAN (Jolicoeur-Martineau, 2019): D judges whether a real sample is more real than its paired fake."""
  diff = real_logits - fake_logits
  return LossPair(d_loss=jnp.mean(jax.nn.softplus(-diff)),
                  g_loss=jnp.mean(jax.nn.softplus(diff)))


@LOSSES.register("relativistic_average")
def relativistic_average(real_logits, fake_logits) -> LossPair:
  """RaGAN: each sample is compared with the average logit of the other kind."""
  real_vs = real_logits - jnp.mean(fake_logits)
  fake_vs = fake_logits - jnp.mean(real_logits)
  return LossPair(
      d_loss=jnp.mean(jax.nn.softplus(-real_vs)) + jnp.mean(jax.nn.softplus(fake_vs)),
      g_loss=jnp.mean(jax.nn.softplus(-fake_vs)) + jnp.mean(jax.nn.softplus(real_vs)))


# Losses on an auto-encoder D's logits, logit = -L(x) with L(x) >= 0 its reconstruction
# error (models/began.py); train.make_step pairs them with such a D only.
AUTOENCODER_LOSSES = ("began", "ebgan")


@LOSSES.register("began")
def began(real_logits, fake_logits, *, k=0.0) -> LossPair:
  """BEGAN: D minimises L(x) - k L(G(z)), G minimises L(G(z)), with L = -logit the
  reconstruction error; k in [0, 1] is the equilibrium controller's (step.Equilibrium)."""
  real_error, fake_error = -jnp.mean(real_logits), -jnp.mean(fake_logits)
  return LossPair(d_loss=real_error - k * fake_error, g_loss=fake_error)


@LOSSES.register("ebgan")
def ebgan(real_logits, fake_logits, *, margin: float = 1.0) -> LossPair:
  """EBGAN (Zhao et al., 2017): D minimises L(x) + mean max(0, margin - L(G(z))), G minimises
  L(G(z)), with L = -logit the reconstruction error (the energy)."""
  return LossPair(
      d_loss=-jnp.mean(real_logits) + jnp.mean(jax.nn.relu(margin + fake_logits)),
      g_loss=-jnp.mean(fake_logits))


def get_loss(name: str, **options) -> LossFn:
  """The loss registered under `name` with `options` bound (ValueError listing the valid names)."""
  loss = LOSSES.get(name)
  return functools.partial(loss, **options) if options else loss
