"""Images from the generator: fixed latents (and labels) for progress grids, and sampling."""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.latents import get_latent_sampler

_SAMPLE_STREAM = 0x73616d70  # keeps the fixed grid latents apart from training randomness


def fixed_latents(seed: int, num: int, latent_dim: int, distribution: str,
                  stream: int = _SAMPLE_STREAM) -> jax.Array:
  """The same `num` latent vectors for every run with this seed (progress grids, evaluation).

  `stream` separates uses: the progress grid and the evaluation draw different z.
  """
  key = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
  return get_latent_sampler(distribution)(key, (num, latent_dim))


def fixed_labels(seed: int, num: int, label_table: np.ndarray,
                 stream: int = _SAMPLE_STREAM) -> np.ndarray:
  """`num` labels drawn (with replacement) from a conditional run's label table (int32
  (N, heads), one row per training image, so they follow the data's label distribution),
  the same for every run with this seed and table."""
  label_table = np.asarray(label_table, np.int32)
  rows = np.random.default_rng([seed, stream]).integers(0, len(label_table), num)
  return label_table[rows]


def generate(generator: nn.Module, params: Any, stats: Any, z: jax.Array,
             batch_statistics: bool = True, labels: Optional[jax.Array] = None) -> jax.Array:
  """Images in [-1, 1] for latents `z` (and, for a conditional generator, int `labels`
  (batch, heads)).

  With `batch_statistics` (the default) BatchNorm layers normalise with the
  statistics of this batch of samples; the state is not changed. That suits the
  EMA generator, whose weights differ from the ones the running averages were
  collected with. With False they use the stored running averages.
  """
  variables = {"params": params}
  if stats:
    variables["batch_stats"] = stats
  args = (z,) if labels is None else (z, labels)
  if batch_statistics and stats:
    images, _ = generator.apply(variables, *args, train=True, mutable=["batch_stats"])
    return images
  return generator.apply(variables, *args, train=False)


def to_uint8(images: jax.Array) -> jax.Array:
  """Images in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
  return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
