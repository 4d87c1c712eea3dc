"""Latent distributions p(z) that the generator maps to images."""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry

LatentSampler = Callable[[jax.Array, Sequence[int]], jax.Array]
LATENTS: Registry[LatentSampler] = Registry("latent distribution")


@LATENTS.register("gaussian")
def gaussian(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """z ~ N(0, I)."""
  return jax.random.normal(key, shape, jnp.float32)


@LATENTS.register("uniform")
def uniform(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """z ~ U(-1, 1) in every coordinate."""
  return jax.random.uniform(key, shape, jnp.float32, minval=-1.0, maxval=1.0)


def get_latent_sampler(name: str) -> LatentSampler:
  """The sampler registered under `name` (ValueError listing the valid names)."""
  return LATENTS.get(name)
