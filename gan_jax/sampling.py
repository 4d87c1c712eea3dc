"""Images from the generator: fixed latents (and labels) for progress grids, and sampling."""

import inspect
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.latents import get_latent_sampler, truncated_gaussian

_SAMPLE_STREAM = 0x73616d70  # keeps the fixed grid latents apart from training randomness


def fixed_latents(seed: int, num: int, latent_dim: int, distribution: str,
                  stream: int = _SAMPLE_STREAM, truncation: float = 0.0) -> jax.Array:
  """The same `num` latent vectors for every run with this seed (progress grids, evaluation).

  `stream` separates uses: the progress grid and the evaluation draw different z.
  `truncation` > 0 draws Gaussian z truncated to [-truncation, truncation] in every
  coordinate (latents.truncated_gaussian; ValueError for other distributions).
  """
  key = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
  if truncation:
    return truncated_gaussian(key, (num, latent_dim), truncation, distribution)
  return get_latent_sampler(distribution)(key, (num, latent_dim))


def fixed_labels(seed: int, num: int, label_table: np.ndarray,
                 stream: int = _SAMPLE_STREAM) -> np.ndarray:
  """`num` labels drawn (with replacement) from a conditional run's label table (int32
  (N, heads), one row per training image, so they follow the data's label distribution),
  the same for every run with this seed and table."""
  label_table = np.asarray(label_table, np.int32)
  rows = np.random.default_rng([seed, stream]).integers(0, len(label_table), num)
  return label_table[rows]


def check_truncation_psi(generator: nn.Module, truncation_psi: float) -> None:
  """ValueError unless `truncation_psi` is finite and, when it is not 1 (off), `generator`
  has the truncation trick in w (stylegan2's)."""
  if not np.isfinite(truncation_psi):
    raise ValueError(f"truncation_psi must be a finite number, got {truncation_psi}")
  if truncation_psi != 1.0 and "truncation_psi" not in inspect.signature(
      type(generator).__call__).parameters:
    raise ValueError(f"truncation_psi={truncation_psi:g}: {type(generator).__module__}."
                     f"{type(generator).__name__} has no truncation trick in w (stylegan2 has; "
                     "use 1.0, or the truncation of Gaussian z)")


# Where StyleGAN2's truncation pulls w: the one tracked average over all labels, or each
# sample's own label's average w (label_w_centers).
TRUNCATION_CENTERS = ("global", "label")


def check_truncation_center(generator: nn.Module, center: str) -> None:
  """ValueError unless `center` is one of TRUNCATION_CENTERS and, for 'label', `generator`
  is conditional with per-label w averages (a conditional stylegan2)."""
  if center not in TRUNCATION_CENTERS:
    raise ValueError(f"unknown truncation centre {center!r}; choose from: "
                     f"{', '.join(TRUNCATION_CENTERS)}")
  if center == "label" and not (hasattr(generator, "label_w_avg")
                                and getattr(generator, "label_classes", ())):
    raise ValueError(f"truncation centre 'label': {type(generator).__module__}."
                     f"{type(generator).__name__} is not a conditional generator with "
                     "per-label w averages (a conditional stylegan2 is; use 'global')")


def label_w_averager(generator: nn.Module, latents: jax.Array, chunk: int = 16
                     ) -> Callable[[Any, np.ndarray], np.ndarray]:
  """f(params, labels) -> float32 (N, w_dim): for each row of `labels` (int (N, heads)), its
  label's average w over `latents` (K, latent_dim) (the generator's label_w_avg), computed
  once per distinct label row, in chunks of `chunk` rows (one program, compiled once for
  every call of f)."""
  average = jax.jit(lambda p, y: generator.apply({"params": p}, y, latents,
                                                 method="label_w_avg"))

  def centers_of(params: Any, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, np.int32)
    unique, inverse = np.unique(labels, axis=0, return_inverse=True)
    rows = -(-len(unique) // chunk) * chunk
    padded = np.concatenate([unique, np.repeat(unique[:1], rows - len(unique), axis=0)])
    centers = np.concatenate([np.asarray(average(params, padded[i:i + chunk]))
                              for i in range(0, rows, chunk)])
    return centers[np.reshape(inverse, -1)]
  return centers_of


def label_w_centers(generator: nn.Module, params: Any, labels: np.ndarray,
                    latents: jax.Array, chunk: int = 16) -> np.ndarray:
  """label_w_averager(generator, latents, chunk)(params, labels): each label row's average w."""
  return label_w_averager(generator, latents, chunk)(params, labels)


def generate(generator: nn.Module, params: Any, stats: Any, z: jax.Array,
             batch_statistics: bool = True, labels: Optional[jax.Array] = None,
             truncation_psi: float = 1.0, noise_key: Optional[jax.Array] = None,
             truncation_center: Optional[jax.Array] = None) -> jax.Array:
  """Images in [-1, 1] for latents `z` (and, for a conditional generator, int `labels`
  (batch, heads)).

  With `batch_statistics` (the default) BatchNorm layers normalise with the
  statistics of this batch of samples; the state is not changed. That suits the
  EMA generator, whose weights differ from the ones the running averages were
  collected with. With False they use the stored running averages.

  `truncation_psi` != 1 applies the truncation trick (w <- c + psi (w - c), c the tracked
  w_avg or, given, each sample's row of `truncation_center` (batch, w_dim), e.g. from
  label_w_centers; generators that track w, i.e. stylegan2, else ValueError). `noise_key` gives a
  generator with noise inputs fresh noise (rngs={'noise': key}); without it they
  use their fixed noise, so samples are a deterministic function of z.
  """
  variables = {"params": params}
  if stats:
    variables["batch_stats"] = stats
  args = (z,) if labels is None else (z, labels)
  options = {}
  check_truncation_psi(generator, truncation_psi)
  if truncation_psi != 1.0:
    options["truncation_psi"] = truncation_psi
    if truncation_center is not None:
      options["truncation_center"] = truncation_center
  if noise_key is not None:
    options["rngs"] = {"noise": noise_key}
  if batch_statistics and stats:
    images, _ = generator.apply(variables, *args, train=True, mutable=["batch_stats"],
                                **options)
    return images
  return generator.apply(variables, *args, train=False, **options)


def to_uint8(images: jax.Array) -> jax.Array:
  """Images in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
  return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def discriminator_logits(discriminator: nn.Module, params: Any, stats: Any, x: jax.Array,
                         labels: Optional[jax.Array] = None) -> jax.Array:
  """D's logits (batch,) for images `x` (and, conditional, int `labels` (batch, heads)) in
  eval mode: stored statistics, nothing updated."""
  variables = {"params": params, **({"batch_stats": stats} if stats else {})}
  args = (x,) if labels is None else (x, labels)
  return discriminator.apply(variables, *args, train=False)
