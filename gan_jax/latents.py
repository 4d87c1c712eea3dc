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


def check_truncation(threshold: float, distribution: str) -> None:
  """ValueError unless `threshold` is 0 (off) or > 0 for a generator trained on Gaussian z."""
  if threshold < 0 or not threshold == threshold:
    raise ValueError(f"truncation threshold must be > 0 (or 0: off), got {threshold}")
  if threshold and distribution != "gaussian":
    raise ValueError(f"truncation applies to Gaussian latents; this generator was trained on "
                     f"{distribution!r} z")


def truncated_gaussian(key: jax.Array, shape: Sequence[int], threshold: float,
                       distribution: str = "gaussian") -> jax.Array:
  """z ~ N(0, I) conditioned on |z_i| <= threshold in every coordinate: BigGAN's truncation
  trick for sampling a generator trained on Gaussian z (smaller threshold: samples nearer
  the mode, more typical and less varied). ValueError for a threshold <= 0 or a generator
  trained on another `distribution`."""
  check_truncation(threshold, distribution)
  if not threshold:
    raise ValueError("truncation threshold must be > 0, got 0")
  return jax.random.truncated_normal(key, -threshold, threshold, shape, jnp.float32)


def get_latent_sampler(name: str) -> LatentSampler:
  """The sampler registered under `name` (ValueError listing the valid names)."""
  return LATENTS.get(name)
