"""Puts each iteration's image batch on the devices: from host memory or from device memory.

Both feeders give `batch(step)`: uint8 (d_steps, batch_size, H, W, C) split
along the mesh's `data` axis, a pure function of (seed, step), so a resumed
run sees exactly the batches an uninterrupted run would. Given `labels` (int32
(N, num_heads), row i the label of image i; see data/labels.py) a batch is a
LabeledBatch(images, labels (d_steps, batch_size, num_heads)), the labels
gathered with the images' own indices; without, it stays a plain image array.

  HostFeeder    the uint8 array stays on the host; each batch is gathered
                there (EpochSampler) and transferred. In a multi-process run
                each process gathers and sends only its own devices' rows.
  DeviceFeeder  the whole array lives on the devices, split along `data`;
                each device draws its part of every batch from its own shard
                (a keyed permutation per epoch from (seed, device, epoch),
                evaluated per index: data/permutation.py) and gathers it
                itself: no host work per step. In a multi-process run each
                process places only its own devices' shards, and the batches
                are those of one process with the same devices.
`make_feeder` chooses by size unless told. For datasets too large to decode
into memory, see streaming.StreamFeeder.

A feeder whose batches are a pure function of arrays already on the devices
(DeviceFeeder) also gives `device_data()` (those arrays) and `select(data,
step)` (the batch from them, traceable inside jit): training then compiles the
selection into the train step itself (gan_jax/fed_step.py), one device call per
iteration; `batch(step)` stays for callers that want the batch on its own.
"""

from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax import parallel
from gan_jax.data.labels import LabeledBatch
from gan_jax.data.permutation import permute_index
from gan_jax.data.sampler import EpochSampler
from gan_jax.errors import ConfigError

_FLIP_STREAM = 0x666C6970  # separates flip randomness from batch selection


def host_flips(seed: int, step: int, count: int) -> np.ndarray:
  """Which of iteration `step`'s `count` images are mirrored (hflip on the host)."""
  return np.random.default_rng([seed, _FLIP_STREAM, step]).random(count) < 0.5


def to_devices(sharding: NamedSharding, local: np.ndarray, batch_size: int) -> jax.Array:
  """The global (d_steps, batch_size, ...) array of which this process holds the columns
  `local` (d_steps, its share of the batch, ...), laid out by `sharding`."""
  global_shape = (local.shape[0], batch_size, *local.shape[2:])
  return jax.make_array_from_process_local_data(sharding, local, global_shape)


class Feeder:
  """What training asks of a feeder: `batch(step)`, `skipped_counts()`, `close()`."""

  mode = "abstract"
  label_table: Optional[np.ndarray] = None  # int32 (N, heads) labels of the images, on the host

  def batch(self, step: int) -> jax.Array:
    """Iteration `step`'s uint8 images (d_steps, batch, H, W, C), split along `data` (a
    LabeledBatch with their labels when the feeder has labels)."""
    raise NotImplementedError

  def device_data(self) -> Optional[Tuple[jax.Array, ...]]:
    """The device arrays `select` reads, for a feeder whose batches can be selected inside
    the train step; None (the default) for one that must deliver each batch itself."""
    return None

  def select(self, data: Tuple[jax.Array, ...], step: jax.Array) -> Any:
    """Iteration `step`'s batch, exactly as batch(step) gives it, from `device_data()`: a pure
    function of jax values, traceable inside jit (feeders with device_data only)."""
    raise NotImplementedError(f"{type(self).__name__} does not select batches on the devices")

  def skipped_counts(self) -> Dict[str, int]:
    """Inputs found unusable while feeding, by reason (none for decoded arrays)."""
    return {}

  def close(self) -> None:
    """Releases what the feeder holds (threads, buffers); nothing by default."""


class HostFeeder(Feeder):
  """Batches gathered on the host from a uint8 array and sent to the devices."""

  mode = "host"

  def __init__(self, images: np.ndarray, *, batch_size: int, d_steps: int, seed: int,
               mesh: Mesh, hflip: bool = False, labels: Optional[np.ndarray] = None):
    self.images = images
    self.labels = self.label_table = checked_labels(labels, len(images))
    self.batch_size, self.d_steps, self.seed, self.hflip = batch_size, d_steps, seed, hflip
    self.sharding = parallel.batch_sharding(mesh, batch_axis=1)
    self.sampler = EpochSampler(len(images), seed)
    # The global batch's columns this process feeds (all of them with one process).
    self.columns = parallel.process_rows(self.sharding, (d_steps, batch_size), axis=1)

  def _index(self, step: int) -> np.ndarray:
    """Which images make this process's columns of iteration `step`: (d_steps, local batch)."""
    n = self.d_steps * self.batch_size
    return self.sampler.indices(step * n, n).reshape(self.d_steps, self.batch_size)[:, self.columns]

  def host_batch(self, step: int) -> np.ndarray:
    """This process's columns of iteration `step`'s images, on the host: (d_steps, local
    batch, H, W, C), the whole batch with one process."""
    batch = self.images[self._index(step)]
    if self.hflip:
      n = self.d_steps * self.batch_size
      flip = host_flips(self.seed, step, n).reshape(self.d_steps, self.batch_size)[:, self.columns]
      batch[flip] = batch[flip][:, :, ::-1]
    return batch

  def host_labels(self, step: int) -> np.ndarray:
    """This process's columns of iteration `step`'s labels (the images' own indices)."""
    return self.labels[self._index(step)]

  def batch(self, step: int) -> jax.Array:
    """Iteration `step`'s images (and labels) on the devices, split along `data`."""
    images = to_devices(self.sharding, self.host_batch(step), self.batch_size)
    if self.labels is None:
      return images
    return LabeledBatch(images, to_devices(self.sharding, self.host_labels(step),
                                           self.batch_size))


class DeviceFeeder(Feeder):
  """The dataset in device memory, split along `data`; batches gathered on device."""

  mode = "device"

  @staticmethod
  def unsuitable(num_images: int, *, batch_size: int, d_steps: int, devices: int) -> str:
    """Why `num_images` cannot be fed this way ('' if they can)."""
    per_device = d_steps * batch_size // devices
    num_local = num_images // devices
    if num_local < per_device:
      return (f"device feeding needs at least d_steps * batch_size = {d_steps * batch_size} "
              f"images ({per_device} per device), got {num_images}")
    if num_local * per_device >= 2**31:
      return "dataset x batch too large for int32 stream positions"
    return ""

  def __init__(self, images: np.ndarray, *, batch_size: int, d_steps: int, seed: int,
               mesh: Mesh, hflip: bool = False, labels: Optional[np.ndarray] = None):
    devices = mesh.shape[parallel.DATA_AXIS]
    per_device = d_steps * batch_size // devices
    self.num_local = len(images) // devices
    self.num_dropped = len(images) - self.num_local * devices
    problem = self.unsuitable(len(images), batch_size=batch_size, d_steps=d_steps,
                              devices=devices)
    if problem:
      raise ConfigError(f"{problem}; use data.feed='host'")
    split_rows = NamedSharding(mesh, P(parallel.DATA_AXIS))
    self.images = parallel.global_array(images[:self.num_local * devices], split_rows)
    labels = self.label_table = checked_labels(labels, len(images))
    self.labels = None if labels is None else parallel.global_array(
        labels[:self.num_local * devices], split_rows)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x64657669)
    num_local, shape = self.num_local, images.shape[1:]

    def local_batch(local_images, step):
      device_key = jax.random.fold_in(key, jax.lax.axis_index(parallel.DATA_AXIS))
      # Stream position step * per_device, split to stay inside int32.
      laps, rest = jnp.divmod(step, num_local)
      epoch = laps * per_device + (rest * per_device) // num_local
      offsets = (rest * per_device) % num_local + jnp.arange(per_device)
      wrapped = offsets >= num_local
      epochs = epoch + wrapped
      index = jax.vmap(lambda offset, e: permute_index(
          offset, jax.random.fold_in(device_key, e), num_local))(
              offsets - wrapped * num_local, epochs)
      batch = local_images[index]
      if hflip:
        flip_key = jax.random.fold_in(jax.random.fold_in(device_key, _FLIP_STREAM), step)
        flip = jax.random.bernoulli(flip_key, 0.5, (per_device,))
        batch = jnp.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
      return batch.reshape(d_steps, per_device // d_steps, *shape), index

    def local_select(local_images, *rest):
      *local_labels, step = rest
      batch, index = local_batch(local_images, step)
      if not local_labels:
        return batch
      return batch, local_labels[0][index].reshape(d_steps, per_device // d_steps, -1)

    data, replicated, split = P(parallel.DATA_AXIS), P(), P(None, parallel.DATA_AXIS)
    if self.labels is None:
      self._select = jax.shard_map(local_select, mesh=mesh, in_specs=(data, replicated),
                                   out_specs=split)
    else:
      self._select = jax.shard_map(local_select, mesh=mesh, in_specs=(data, data, replicated),
                                   out_specs=(split, split))
    self._batch = jax.jit(self.select)

  def device_data(self) -> Tuple[jax.Array, ...]:
    """(images,) or (images, labels): the whole set on the devices, split along `data`."""
    return (self.images,) if self.labels is None else (self.images, self.labels)

  def select(self, data: Tuple[jax.Array, ...], step: jax.Array) -> Any:
    """Iteration `step`'s images (a LabeledBatch with labels when `data` has them) from
    device_data(): the keyed permutation, flips and gather, traceable inside jit."""
    out = self._select(*data, jnp.asarray(step, jnp.int32))
    return out if len(data) == 1 else LabeledBatch(*out)

  def batch(self, step: int) -> jax.Array:
    """Iteration `step`'s images (and labels), gathered on the devices (one jitted call)."""
    return self._batch(self.device_data(), jnp.int32(step))


def checked_labels(labels: Optional[np.ndarray], num_images: int) -> Optional[np.ndarray]:
  """`labels` as int32 (N, heads) for N images, or None; ConfigError if they do not fit."""
  if labels is None:
    return None
  labels = np.asarray(labels, np.int32)
  if labels.ndim != 2 or len(labels) != num_images:
    raise ConfigError(f"labels must be (num_images={num_images}, heads), got {labels.shape}")
  return labels


def make_feeder(images: np.ndarray, *, feed: str, batch_size: int, d_steps: int, seed: int,
                mesh: Mesh, hflip: bool = False, device_budget_gb: float = 4.0,
                labels: Optional[np.ndarray] = None) -> Feeder:
  """A DeviceFeeder for feed='device', a HostFeeder for 'host'; 'auto' picks device when
  each device's shard fits in `device_budget_gb` and DeviceFeeder can use it. `labels` (int32
  (N, heads)) makes every batch a LabeledBatch."""
  if feed not in ("auto", "device", "host"):
    raise ConfigError(f"unknown feed {feed!r} for an in-memory array; choose from: "
                      "auto, device, host")
  if feed == "auto":
    devices = mesh.shape[parallel.DATA_AXIS]
    fits = images.nbytes / devices / 2**30 <= device_budget_gb
    usable = not DeviceFeeder.unsuitable(len(images), batch_size=batch_size, d_steps=d_steps,
                                         devices=devices)
    feed = "device" if fits and usable else "host"
  cls = DeviceFeeder if feed == "device" else HostFeeder
  return cls(images, batch_size=batch_size, d_steps=d_steps, seed=seed, mesh=mesh, hflip=hflip,
             labels=labels)
