"""Images from the generator: fixed latents for progress grids, and sampling."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.latents import get_latent_sampler

_SAMPLE_STREAM = 0x73616d70  # keeps the fixed grid latents apart from training randomness


def fixed_latents(seed: int, num: int, latent_dim: int, distribution: str,
                  stream: int = _SAMPLE_STREAM) -> jax.Array:
  """The same `num` latent vectors for every run with this seed (progress grids, evaluation).

  `stream` separates uses: the progress grid and the evaluation draw different z.
  """
  key = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
  return get_latent_sampler(distribution)(key, (num, latent_dim))


def generate(generator: nn.Module, params: Any, stats: Any, z: jax.Array,
             batch_statistics: bool = True) -> jax.Array:
  """Images in [-1, 1] for latents `z`.

  With `batch_statistics` (the default) BatchNorm layers normalise with the
  statistics of this batch of samples; the state is not changed. That suits the
  EMA generator, whose weights differ from the ones the running averages were
  collected with. With False they use the stored running averages.
  """
  variables = {"params": params}
  if stats:
    variables["batch_stats"] = stats
  if batch_statistics and stats:
    images, _ = generator.apply(variables, z, train=True, mutable=["batch_stats"])
    return images
  return generator.apply(variables, z, train=False)


def to_uint8(images: jax.Array) -> jax.Array:
  """Images in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
  return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
