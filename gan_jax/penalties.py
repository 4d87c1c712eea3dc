"""Loss-side regularisers of the discriminator: most need its input gradient grad_x D(x).

Every penalty has one signature, `penalty(d_fn, real, fake, key, **options)
-> scalar`, where `d_fn(x)` is the discriminator's logits as a function of its
input (parameters bound, so gradients flow to them). The train step adds
`weight * penalty` to D's loss for each penalty listed in
`config.penalty.use`, so any penalty combines with any loss and constraint.

Not every penalty is a gradient penalty: `cr` and `cr_fake` (consistency
regularisation) penalise D's sensitivity to an image augmentation instead.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from gan_jax import augment
from gan_jax.registry import Registry

DFn = Callable[[jax.Array], jax.Array]
PENALTIES: Registry[Callable[..., jax.Array]] = Registry("penalty")


def input_gradient_norms(d_fn: DFn, x: jax.Array) -> jax.Array:
  """||grad_x D(x_i)|| for every sample i of the batch x."""
  grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(x)
  return jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1) + 1e-12)


def _per_sample(key: jax.Array, x: jax.Array, sampler) -> jax.Array:
  return sampler(key, (x.shape[0],) + (1,) * (x.ndim - 1))


@PENALTIES.register("wgan_gp")
def wgan_gp(d_fn: DFn, real, fake, key, *, one_sided: bool = False) -> jax.Array:
  """WGAN-GP (Gulrajani et al., 2017): E[(||grad D(x^)|| - 1)^2] on random interpolates x^.

  one_sided penalises only norms above 1: E[max(0, ||grad|| - 1)^2].
  """
  eps = _per_sample(key, real, jax.random.uniform)
  norms = input_gradient_norms(d_fn, eps * real + (1.0 - eps) * fake)
  excess = jax.nn.relu(norms - 1.0) if one_sided else norms - 1.0
  return jnp.mean(jnp.square(excess))


@PENALTIES.register("dragan")
def dragan(d_fn: DFn, real, fake, key, *, c: float = 0.5) -> jax.Array:
  """DRAGAN (Kodali et al., 2017): the gradient penalty around real data, at x + a * c * std(x) * u."""
  del fake
  k_noise, k_mix = jax.random.split(key)
  noise = c * jnp.std(real) * jax.random.uniform(k_noise, real.shape)
  alpha = _per_sample(k_mix, real, jax.random.uniform)
  norms = input_gradient_norms(d_fn, real + alpha * noise)
  return jnp.mean(jnp.square(norms - 1.0))


@PENALTIES.register("r1")
def r1(d_fn: DFn, real, fake, key) -> jax.Array:
  """R1 (Mescheder et al., 2018): 1/2 E_data ||grad_x D(x)||^2 (weight = gamma)."""
  del fake, key
  return 0.5 * jnp.mean(jnp.square(input_gradient_norms(d_fn, real)))


@PENALTIES.register("r2")
def r2(d_fn: DFn, real, fake, key) -> jax.Array:
  """R2: 1/2 E_G ||grad_x D(x)||^2 on generated samples."""
  del real, key
  return 0.5 * jnp.mean(jnp.square(input_gradient_norms(d_fn, fake)))


@PENALTIES.register("drift")
def drift(d_fn: DFn, real, fake, key) -> jax.Array:
  """ProGAN's drift term (Karras et al., 2018): E_data[D(x)^2], which keeps a Wasserstein
  critic's logits from drifting far from 0 (weight epsilon = 0.001)."""
  del fake, key
  return jnp.mean(jnp.square(d_fn(real)))


# Consistency regularisation's default T: CR-GAN's random flip and translation.
CONSISTENCY_POLICY = "flip,translation"


def _consistency(d_fn: DFn, x: jax.Array, key: jax.Array, policy: str) -> jax.Array:
  """E[(D(x) - D(T(x)))^2], T `policy`'s augmentations applied to every sample."""
  transform = augment.make_augment(policy)
  if transform is None:
    raise ValueError("consistency regularisation needs an augmentation policy, got ''")
  return jnp.mean(jnp.square(d_fn(x) - d_fn(transform(key, x))))


@PENALTIES.register("cr")
def cr(d_fn: DFn, real, fake, key, *, policy: str = CONSISTENCY_POLICY) -> jax.Array:
  """Consistency regularisation (CR-GAN, Zhang et al., 2020): E_data[(D(x) - D(T(x)))^2]
  for a random augmentation T (`policy`, gan_jax/augment.py; by default CR-GAN's: a random
  flip and translation), so D gives an image and its augmented copy the same score;
  gradients flow through both terms."""
  del fake
  return _consistency(d_fn, real, key, policy)


@PENALTIES.register("cr_fake")
def cr_fake(d_fn: DFn, real, fake, key, *, policy: str = CONSISTENCY_POLICY) -> jax.Array:
  """cr on generated images, E_G[(D(x) - D(T(x)))^2]: with cr, balanced consistency
  regularisation (bCR, Zhao et al., 2021)."""
  del real
  return _consistency(d_fn, fake, key, policy)


CONSISTENCY_PENALTIES = ("cr", "cr_fake")


def parse_names(use: str) -> list:
  """'wgan_gp, r1' -> ['wgan_gp', 'r1']; '' -> []. Unknown names raise ValueError."""
  names = [n.strip() for n in use.split(",") if n.strip()]
  for name in names:
    PENALTIES.get(name)
  if len(set(names)) != len(names):
    raise ValueError(f"penalty listed twice in {use!r}")
  return names
