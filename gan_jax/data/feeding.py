"""Puts each iteration's image batch on the devices."""

import jax
import numpy as np
from jax.sharding import NamedSharding

from gan_jax.data.sampler import EpochSampler


class HostFeeder:
  """Batches gathered on the host from a uint8 array and sent to the devices.

  `batch(t)` is the (d_steps, batch_size, H, W, C) uint8 array of iteration t,
  split over the mesh's `data` axis. Transfers are asynchronous, so the next
  batch is gathered and sent while the devices run the current step.
  """

  def __init__(self, images: np.ndarray, *, batch_size: int, d_steps: int,
               seed: int, sharding: NamedSharding):
    self.images = images
    self.batch_size = batch_size
    self.d_steps = d_steps
    self.sharding = sharding
    self.sampler = EpochSampler(len(images), seed)

  @property
  def examples_per_step(self) -> int:
    return self.d_steps * self.batch_size

  def host_batch(self, step: int) -> np.ndarray:
    """Iteration `step`'s images on the host."""
    n = self.examples_per_step
    idx = self.sampler.indices(step * n, n)
    return self.images[idx].reshape(self.d_steps, self.batch_size, *self.images.shape[1:])

  def batch(self, step: int) -> jax.Array:
    """Iteration `step`'s images on the devices, split along `data`."""
    return jax.device_put(self.host_batch(step), self.sharding)
