"""The device mesh, how arrays are laid out on it, and joining a multi-process run.

One mesh axis, `data`: image batches are split along it, the training state
is replicated on every device. See gan_jax/step.py for what that means for
the computation. In a multi-process run (several hosts, or one process per
GPU; `initialize_distributed`) the mesh spans every device of every process
and each process supplies only the batch rows of its own devices
(`process_rows`).
"""

from typing import Optional, Sequence, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax.errors import ConfigError, UserError

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


def global_array(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """`value`, which every process holds whole, laid out by `sharding`: each process places only
  its own devices' slices (every slice with one process)."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def process_rows(sharding: NamedSharding, global_shape: Tuple[int, ...], axis: int) -> np.ndarray:
  """Indices along `axis` of a `global_shape` array that this process's devices hold, ascending.

  These are the rows a process passes to jax.make_array_from_process_local_data
  (which expects its shards' slices concatenated in ascending order); with one
  process, every row.
  """
  spans = set()
  for index in sharding.addressable_devices_indices_map(tuple(global_shape)).values():
    span = index[axis]
    spans.add((span.start or 0, global_shape[axis] if span.stop is None else span.stop))
  return np.concatenate([np.arange(start, stop) for start, stop in sorted(spans)])


def is_primary() -> bool:
  """Whether this is process 0, the one that writes metrics, samples and progress."""
  return jax.process_index() == 0


def process_zero_says(flag: bool) -> bool:
  """Process 0's `flag`, on every process (`flag` itself with one process).

  For decisions every process must take alike, such as stopping on a wall-clock
  limit. A collective: in a multi-process run every process must call it.
  """
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(multihost_utils.broadcast_one_to_all(np.asarray(bool(flag))))


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None,
                           auto_detect: bool = False) -> bool:
  """Joins this process to a multi-process run when asked; returns whether it did.

  Explicit: all of `coordinator_address` ('host:port' of process 0),
  `num_processes` and `process_id`. `auto_detect`: jax.distributed.initialize
  finds whatever is not given from the environment (SLURM, Open MPI, Cloud
  TPU). Neither: a single-process run, nothing happens. CPU devices exchange
  data across processes through gloo collectives (enabled here unless another
  implementation was chosen). Must run before anything touches a JAX device.
  """
  given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
           "process_id": process_id}
  if not auto_detect and all(v is None for v in given.values()):
    return False
  missing = [f"--{name}" for name, value in given.items() if value is None]
  if missing and not auto_detect:
    raise UserError(f"a multi-process run needs {', '.join(missing)} as well (or --distributed "
                    "to detect them from SLURM, Open MPI or a TPU pod)")
  if num_processes is not None and num_processes < 1:
    raise UserError(f"--num_processes must be >= 1, got {num_processes}")
  if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
    raise UserError(f"--process_id must be in [0, {num_processes}), got {process_id}")
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  except (ValueError, RuntimeError) as e:
    raise UserError(f"could not join the multi-process run: {e}") from e
  return True
