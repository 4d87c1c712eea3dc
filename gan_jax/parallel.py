"""The device mesh and how arrays are laid out on it.

One mesh axis, `data`: image batches are split along it, the training state
is replicated on every device. See gan_jax/step.py for what that means for
the computation.
"""

from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D `data` mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Axis `batch_axis` is split over the `data` axis, the others are whole."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """Raise ConfigError unless `batch_size` splits evenly over the mesh's devices."""
  n = mesh.shape[DATA_AXIS]
  if batch_size <= 0 or batch_size % n:
    raise ConfigError(
        f"train.batch_size={batch_size} must be a positive multiple of the number "
        f"of devices ({n}); e.g. --config.train.batch_size={max(n, batch_size // n * n or n)}")
