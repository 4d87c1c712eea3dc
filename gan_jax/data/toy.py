"""Toy 2-D data for the lab: mixtures of Gaussians, sampled on the devices, and their metrics.

  toy:ring8   8 modes evenly spaced on a circle of radius 2, std 0.02
              (the unrolled-GAN benchmark, Metz et al., 2017)
  toy:grid25  25 modes on the grid {-4, -2, 0, 2, 4}^2, std 0.05
              (VEEGAN, Srivastava et al., 2017; PacGAN, Lin et al., 2018)

Batches are a pure function of (seed, step), drawn on the devices (no host
work, nothing to store in a checkpoint), so a resumed run sees the batches an
uninterrupted one would.

Metrics follow PacGAN's protocol: a sample is high quality if it lies within
3 standard deviations of its nearest mode; a mode is covered if at least 20 of
every 2,500 samples (`min_fraction` = 0.008) are high-quality samples nearest
to it.
"""

import dataclasses
import functools
import math
from typing import Callable, Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gan_jax import parallel
from gan_jax.data.feeding import Feeder
from gan_jax.registry import Registry

_TOY_STREAM = 0x746f79  # separates data randomness from the model's
MIN_FRACTION = 20 / 2500  # PacGAN: a mode with fewer than 20 of 2,500 samples is lost


@dataclasses.dataclass(frozen=True, eq=False)
class Mixture:
  """An equal-weight mixture of isotropic Gaussians N(center_k, std^2 I)."""
  name: str
  centers: np.ndarray  # (num_modes, dim)
  std: float

  @property
  def num_modes(self) -> int:
    return len(self.centers)

  @property
  def dim(self) -> int:
    return self.centers.shape[1]

  @property
  def extent(self) -> float:
    """Half-width of a square window around the origin that holds the data with margin."""
    return float(np.max(np.abs(self.centers))) * 1.5 + 6 * self.std

  def sample(self, key: jax.Array, num: int) -> jax.Array:
    """`num` points (num, dim) drawn from the mixture."""
    k_mode, k_noise = jax.random.split(key)
    modes = jax.random.randint(k_mode, (num,), 0, self.num_modes)
    noise = jax.random.normal(k_noise, (num, self.dim), jnp.float32)
    return jnp.asarray(self.centers, jnp.float32)[modes] + self.std * noise

  def describe(self) -> str:
    return f"toy:{self.name} ({self.num_modes} Gaussians in {self.dim}-D, std {self.std:g})"


MIXTURES: Registry[Callable[[], Mixture]] = Registry("toy dataset")


@MIXTURES.register("ring8")
def ring8() -> Mixture:
  """8 Gaussians on a circle of radius 2, std 0.02."""
  angles = 2 * np.pi * np.arange(8) / 8
  return Mixture("ring8", 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1), 0.02)


@MIXTURES.register("grid25")
def grid25() -> Mixture:
  """25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05."""
  axis = np.arange(-4.0, 5.0, 2.0)
  return Mixture("grid25", np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2),
                 0.05)


def get_mixture(name: str) -> Mixture:
  """The mixture registered under `name` (ValueError listing the valid names)."""
  return MIXTURES.get(name)()


def _nearest_modes(samples: np.ndarray, mixture: Mixture,
                   within_stds: float) -> Tuple[np.ndarray, np.ndarray]:
  """(each sample's nearest mode, whether it lies within `within_stds` stds of it)."""
  samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
  distances = np.linalg.norm(samples[:, None, :] - mixture.centers[None], axis=-1)
  nearest = np.argmin(distances, axis=1)
  return nearest, distances[np.arange(len(samples)), nearest] <= within_stds * mixture.std


def mode_metrics(samples: np.ndarray, mixture: Mixture, min_fraction: float = MIN_FRACTION,
                 within_stds: float = 3.0) -> Dict[str, float]:
  """{'modes_covered', 'high_quality'} of generated points, by PacGAN's protocol (module
  docstring); `within_stds` widens (or narrows) its 3-std radius of a high-quality sample."""
  nearest, good = _nearest_modes(samples, mixture, within_stds)
  counts = np.bincount(nearest[good], minlength=mixture.num_modes)
  needed = max(1, math.ceil(min_fraction * len(samples)))
  return {"modes_covered": float(np.sum(counts >= needed)),
          "high_quality": float(np.mean(good))}


def mode_imbalance(samples: np.ndarray, mixture: Mixture, within_stds: float = 3.0) -> float:
  """Total variation between the modes' shares of the high-quality samples (mode_metrics'
  sense) and equal shares: 0 when every mode gets as many, 1 - 1/num_modes when one mode
  gets them all; NaN when no sample is high quality."""
  nearest, good = _nearest_modes(samples, mixture, within_stds)
  if not good.any():
    return float("nan")
  shares = np.bincount(nearest[good], minlength=mixture.num_modes) / good.sum()
  return float(0.5 * np.sum(np.abs(shares - 1.0 / mixture.num_modes)))


def reference_key() -> jax.Array:
  """The key of the fixed data sample drawn under generated points in plots."""
  return jax.random.PRNGKey(_TOY_STREAM)


def toy_batch(mixture: Mixture, seed: int, step: jax.Array, d_steps: int,
              batch_size: int) -> jax.Array:
  """Iteration `step`'s real points, (d_steps, batch_size, dim), a pure function of (seed, step)."""
  key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), _TOY_STREAM), step)
  return mixture.sample(key, d_steps * batch_size).reshape(d_steps, batch_size, mixture.dim)


class ToyFeeder(Feeder):
  """Batches of a Mixture drawn on the devices, split along `data`. The draw needs no data
  (`device_data()` is empty), so training compiles it into the step (gan_jax/fed_step.py)."""

  mode = "device (sampled)"

  def __init__(self, mixture: Mixture, *, batch_size: int, d_steps: int, seed: int,
               mesh: Mesh):
    self.mixture = mixture
    self._sharding = parallel.batch_sharding(mesh, batch_axis=1)
    self._draw = functools.partial(toy_batch, mixture, seed, d_steps=d_steps,
                                   batch_size=batch_size)
    self._batch = jax.jit(self._draw, out_shardings=self._sharding)

  def batch(self, step: int) -> jax.Array:
    """Iteration `step`'s float32 points (d_steps, batch, dim)."""
    return self._batch(jnp.int32(step))

  def device_data(self) -> Tuple[()]:
    """Nothing: the points are drawn from (seed, step) alone."""
    return ()

  def select(self, data: Tuple[()], step: jax.Array) -> jax.Array:
    """batch(step), traceable inside the train step."""
    del data
    return jax.lax.with_sharding_constraint(self._draw(step), self._sharding)
