"""The FID Inception-v3 network in Flax, numerically equal to pytorch-fid's.

`FIDInceptionV3` is the network pytorch-fid's `fid_inception_v3()` builds:
torchvision's Inception3 (1008 classes, no aux head, no input transform) with
the TensorFlow-compatible blocks (average pools that ignore the zero padding,
a max pool in the last block). Its weights are pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth`, the 2015-12-05 TensorFlow Inception
also used by TTUR and clean-fid. The file is a torch state dict, read here
WITHOUT torch by a restricted unpickler that understands both torch
serialisation formats (zip, torch >= 1.6, and the older "legacy" stream).

Input handling follows pytorch-fid's `InceptionV3(resize_input=True,
normalize_input=True)`, which is what its `fid_score` uses: images to [0, 1],
bilinear resize to 299x299 exactly like torch's
`F.interpolate(mode='bilinear', align_corners=False)` (no antialiasing; here
`jax.image.resize(method='linear', antialias=False)`, equal to torch to float
rounding for up- and downsampling), then to [-1, 1]. Features therefore match
pytorch-fid's, and FIDs are comparable with its numbers and with statistics it
computed. Other implementations resize differently (clean-fid on purpose, with
an antialiased PIL bicubic filter; TTUR inside the TF graph with TF1's bilinear
resize, without half-pixel centres), so their FIDs of images that are not
299x299 are not exactly comparable with these.

Finding the weights (`resolve_weights`): an explicit path
(`config.eval.inception_path`), else the environment variable
GAN_JAX_INCEPTION, else `$XDG_CACHE_HOME/gan_jax/<file>` (default
`~/.cache`), else one download into that cache, checked by its sha256. Nothing
else is ever substituted: without the file the run stops and says how to
provide it.
"""

import collections
import hashlib
import os
import pickle
import tempfile
import urllib.request
import zipfile
from typing import Any, Callable, Dict, Optional, Tuple

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import ConfigError

PyTree = Any

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_FILE)
# The file's sha256 starts with this (pytorch-fid's naming convention).
WEIGHTS_SHA256_PREFIX = "6726825d"
ENV_VAR = "GAN_JAX_INCEPTION"
CONFIG_FLAG = "--config.eval.inception_path"

INPUT_SIZE = 299
POOL_DIM = 2048
NUM_CLASSES = 1008

_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------
# The network.


class BasicConv2d(nn.Module):
  """Convolution without bias, inference-mode BatchNorm (eps 1e-3), ReLU."""
  features: int
  kernel_size: Tuple[int, int]
  strides: Tuple[int, int] = (1, 1)
  padding: Tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel_size, self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, precision=_HIGHEST, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _conv(features: int, kernel_size, name: str, strides=(1, 1), padding=(0, 0)) -> BasicConv2d:
  """A BasicConv2d; an int kernel size means square."""
  if isinstance(kernel_size, int):
    kernel_size = (kernel_size, kernel_size)
  return BasicConv2d(features, tuple(kernel_size), tuple(strides), tuple(padding), name=name)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  """3x3 stride-1 average over the unpadded neighbours (TF's, count_include_pad=False)."""
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """3x3 stride-2 max pool without padding."""
  return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class InceptionA(nn.Module):
  """Mixed_5b..5d (pytorch-fid's FIDInceptionA)."""
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = _conv(64, 1, "branch1x1")(x)
    b5 = _conv(48, 1, "branch5x5_1")(x)
    b5 = _conv(64, 5, "branch5x5_2", padding=(2, 2))(b5)
    b3 = _conv(64, 1, "branch3x3dbl_1")(x)
    b3 = _conv(96, 3, "branch3x3dbl_2", padding=(1, 1))(b3)
    b3 = _conv(96, 3, "branch3x3dbl_3", padding=(1, 1))(b3)
    bp = _conv(self.pool_features, 1, "branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: grid reduction 35 -> 17."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = _conv(384, 3, "branch3x3", strides=(2, 2))(x)
    bd = _conv(64, 1, "branch3x3dbl_1")(x)
    bd = _conv(96, 3, "branch3x3dbl_2", padding=(1, 1))(bd)
    bd = _conv(96, 3, "branch3x3dbl_3", strides=(2, 2))(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (pytorch-fid's FIDInceptionC): factorised 7x7 branches."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    b1 = _conv(192, 1, "branch1x1")(x)
    b7 = _conv(c7, 1, "branch7x7_1")(x)
    b7 = _conv(c7, (1, 7), "branch7x7_2", padding=(0, 3))(b7)
    b7 = _conv(192, (7, 1), "branch7x7_3", padding=(3, 0))(b7)
    bd = _conv(c7, 1, "branch7x7dbl_1")(x)
    bd = _conv(c7, (7, 1), "branch7x7dbl_2", padding=(3, 0))(bd)
    bd = _conv(c7, (1, 7), "branch7x7dbl_3", padding=(0, 3))(bd)
    bd = _conv(c7, (7, 1), "branch7x7dbl_4", padding=(3, 0))(bd)
    bd = _conv(192, (1, 7), "branch7x7dbl_5", padding=(0, 3))(bd)
    bp = _conv(192, 1, "branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: grid reduction 17 -> 8."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = _conv(192, 1, "branch3x3_1")(x)
    b3 = _conv(320, 3, "branch3x3_2", strides=(2, 2))(b3)
    b7 = _conv(192, 1, "branch7x7x3_1")(x)
    b7 = _conv(192, (1, 7), "branch7x7x3_2", padding=(0, 3))(b7)
    b7 = _conv(192, (7, 1), "branch7x7x3_3", padding=(3, 0))(b7)
    b7 = _conv(192, 3, "branch7x7x3_4", strides=(2, 2))(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (FIDInceptionE_1, average pool) and Mixed_7c (FIDInceptionE_2, max pool)."""
  max_pool: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = _conv(320, 1, "branch1x1")(x)
    b3 = _conv(384, 1, "branch3x3_1")(x)
    b3 = jnp.concatenate([_conv(384, (1, 3), "branch3x3_2a", padding=(0, 1))(b3),
                          _conv(384, (3, 1), "branch3x3_2b", padding=(1, 0))(b3)], axis=-1)
    bd = _conv(448, 1, "branch3x3dbl_1")(x)
    bd = _conv(384, 3, "branch3x3dbl_2", padding=(1, 1))(bd)
    bd = jnp.concatenate([_conv(384, (1, 3), "branch3x3dbl_3a", padding=(0, 1))(bd),
                          _conv(384, (3, 1), "branch3x3dbl_3b", padding=(1, 0))(bd)], axis=-1)
    if self.max_pool:
      # pytorch-fid keeps this quirk of the TF graph: max, not average, here.
      pooled = nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_3x3(x)
    bp = _conv(192, 1, "branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """pytorch-fid's FID Inception-v3 on NHWC float32 inputs in [-1, 1] (normally 299x299).

  Returns {'pool': (N, 2048) features after the global average pool (the FID
  features), 'logits': (N, 1008) the fc layer's output}. Variables:
  {'params': ..., 'batch_stats': ...} as `load_params` returns them.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> Dict[str, jax.Array]:
    x = x.astype(jnp.float32)
    x = _conv(32, 3, "Conv2d_1a_3x3", strides=(2, 2))(x)
    x = _conv(32, 3, "Conv2d_2a_3x3")(x)
    x = _conv(64, 3, "Conv2d_2b_3x3", padding=(1, 1))(x)
    x = _max_pool_3x3_s2(x)
    x = _conv(80, 1, "Conv2d_3b_1x1")(x)
    x = _conv(192, 3, "Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(max_pool=False, name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    pool = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, precision=_HIGHEST, name="fc")(pool)
    return {"pool": pool, "logits": logits}


# ----------------------------------------------------------------------------
# Input handling and batched feature extraction.


def preprocess(images: jax.Array) -> jax.Array:
  """Images (uint8 0..255, or float in [-1, 1]) -> (N, 299, 299, 3) float32 in [-1, 1], as pytorch-fid.

  uint8 -> /255; float -> (x + 1) / 2; bilinear resize to 299x299 like torch's
  `F.interpolate(mode='bilinear', align_corners=False)` (no antialiasing);
  then 2x - 1. One-channel images are repeated to RGB.
  """
  if images.dtype == jnp.uint8:
    x = images.astype(jnp.float32) / 255.0
  else:
    x = (images.astype(jnp.float32) + 1.0) / 2.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  n, h, w, c = x.shape
  if (h, w) != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (n, INPUT_SIZE, INPUT_SIZE, c), method="linear", antialias=False,
                         precision=_HIGHEST)
  return 2.0 * x - 1.0


def _check_images(images: np.ndarray) -> None:
  """Raises ValueError unless `images` is (N, H, W, 1 or 3) uint8, or float within [-1, 1]."""
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"expected images of shape (N, H, W, 3) (or 1 channel), got {images.shape}")
  if images.dtype == np.uint8 or images.size == 0:
    return
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"expected uint8 images (0..255) or floats in [-1, 1], got dtype {images.dtype}")
  low, high = float(np.min(images)), float(np.max(images))
  if not (np.isfinite(low) and np.isfinite(high)) or low < -1.001 or high > 1.001:
    raise ValueError(f"float images must lie in [-1, 1] (uint8 images in 0..255), got values in "
                     f"[{low}, {high}]")


@jax.jit
def _network(variables: PyTree, x: jax.Array) -> Dict[str, jax.Array]:
  """FIDInceptionV3 applied to preprocessed images (module-level: compiled once per batch shape)."""
  return FIDInceptionV3().apply(variables, x)


_preprocess = jax.jit(preprocess)


def make_feature_fn(variables: PyTree, batch_size: int = 50
                    ) -> Callable[[np.ndarray], Dict[str, np.ndarray]]:
  """fn(images) -> {'pool': (N, 2048), 'logits': (N, 1008)} numpy float32, as pytorch-fid computes them.

  `images`: (N, H, W, 3) uint8 in 0..255 (as decoded from image files), or
  float in [-1, 1] (a generator's tanh output; used as is, not quantised to
  uint8 as saving to PNG would do), any H and W. They go through the network
  in jitted batches of exactly `batch_size` (the last one zero-padded), so the
  network compiles once; the resize compiles once per input size and dtype.
  `variables` as from `load_params` / `load_inception`.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  variables = jax.device_put(variables)

  def features(images) -> Dict[str, np.ndarray]:
    """{'pool', 'logits'} of `images` (see make_feature_fn)."""
    images = np.asarray(images)
    _check_images(images)
    n = images.shape[0]
    parts = {"pool": [np.zeros((0, POOL_DIM), np.float32)],
             "logits": [np.zeros((0, NUM_CLASSES), np.float32)]}
    pending = None   # the previous batch, read back while the next one computes

    def read_back(count, out):
      for key in parts:
        parts[key].append(np.asarray(out[key])[:count])

    for start in range(0, n, batch_size):
      batch = images[start:start + batch_size]
      count = batch.shape[0]
      if count < batch_size:
        pad = np.zeros((batch_size - count,) + batch.shape[1:], batch.dtype)
        batch = np.concatenate([batch, pad])
      out = _network(variables, _preprocess(batch))
      if pending is not None:
        read_back(*pending)
      pending = (count, out)
    if pending is not None:
      read_back(*pending)
    return {key: np.concatenate(value) for key, value in parts.items()}

  return features


# ----------------------------------------------------------------------------
# Reading torch state dicts without torch.

_TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL_VERSION = 1001
# torch storage classes whose data can be read; any other is refused.
_STORAGE_DTYPES = {"FloatStorage": np.dtype("float32"), "LongStorage": np.dtype("int64")}


class _StorageType:
  """Stands for a `torch.<name>Storage` class named in the pickle."""

  def __init__(self, name: str):
    self.name = name


class _StorageRef:
  """A storage the pickle refers to: its key, dtype, element count and (legacy) view."""

  def __init__(self, key: str, dtype: np.dtype, numel: int, view: Optional[Tuple[int, int]]):
    self.key, self.dtype, self.numel, self.view = key, dtype, numel, view


class _TensorRef:
  """A tensor to be cut out of a storage once the storages' bytes are read."""

  def __init__(self, storage: _StorageRef, offset: int, size, stride):
    self.storage, self.offset = storage, int(offset)
    self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
  """torch._utils._rebuild_tensor: a tensor view of a storage."""
  if not isinstance(storage, _StorageRef):
    raise pickle.UnpicklingError("tensor without a storage")
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  """torch._utils._rebuild_tensor_v2: as _rebuild_tensor (autograd details dropped)."""
  del requires_grad, backward_hooks, metadata
  return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  """torch._utils._rebuild_parameter: the parameter's tensor."""
  del requires_grad, backward_hooks
  return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles torch's state-dict pickles; refuses every other global (no code runs)."""

  def __init__(self, file, path: str, legacy: bool):
    super().__init__(file)
    self._path, self._legacy = path, legacy
    self.storages: Dict[str, _StorageRef] = {}

  def find_class(self, module: str, name: str):
    """The allowed callable for `module.name`; anything else is an error."""
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    if module == "torch" and name.endswith("Storage"):
      return _StorageType(name)
    allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS) + ", torch.*Storage"
    raise ConfigError(
        f"{self._path}: refusing to load it: its pickle references the Python global "
        f"{module}.{name}, which a torch state dict of tensors never needs (allowed: {allowed}). "
        f"Is it really the Inception weights file {WEIGHTS_FILE}?")

  def persistent_load(self, pid):
    """Resolves ('storage', type, key, location, numel[, view]) to a _StorageRef."""
    if not isinstance(pid, tuple) or not pid:
      raise ConfigError(f"{self._path}: unexpected persistent id {pid!r} in the pickle")
    typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if typename != "storage":
      raise ConfigError(f"{self._path}: holds a {typename!r} object, not only tensors; "
                        "expected a state dict (name -> tensor)")
    if self._legacy and len(pid) == 6:
      storage_type, key, _, numel, view = pid[1:]
    elif not self._legacy and len(pid) == 5:
      storage_type, key, _, numel = pid[1:]
      view = None
    else:
      raise ConfigError(f"{self._path}: unexpected storage record {pid!r}")
    if not isinstance(storage_type, _StorageType):
      raise ConfigError(f"{self._path}: unexpected storage type {storage_type!r}")
    if storage_type.name not in _STORAGE_DTYPES:
      raise ConfigError(
          f"{self._path}: holds a torch.{storage_type.name}; only float32 (FloatStorage) and "
          "int64 (LongStorage) tensors are supported")
    key = str(key)
    root = self.storages.get(key)
    if root is None:
      root = self.storages[key] = _StorageRef(key, _STORAGE_DTYPES[storage_type.name], int(numel),
                                              None)
    if view is None:
      return root
    _, view_offset, view_size = view
    return _StorageRef(key, root.dtype, int(view_size), (int(view_offset), int(view_size)))


def _materialise(tensor: _TensorRef, data: Dict[str, np.ndarray], path: str) -> np.ndarray:
  """The numpy array (a copy) of `tensor`, given every storage's elements."""
  storage = tensor.storage
  flat = data[storage.key]
  if storage.view is not None:
    start, count = storage.view
    flat = flat[start:start + count]
  size, stride = tensor.size, tensor.stride
  if len(size) != len(stride):
    raise ConfigError(f"{path}: tensor with size {size} but stride {stride}")
  if any(s < 0 for s in size + stride) or tensor.offset < 0:
    raise ConfigError(f"{path}: tensor with negative size, stride or offset")
  if 0 in size:
    return np.zeros(size, flat.dtype)
  last = tensor.offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= flat.size:
    raise ConfigError(f"{path}: a tensor reaches past the end of its storage (file truncated?)")
  view = np.lib.stride_tricks.as_strided(flat[tensor.offset:], shape=size,
                                         strides=[s * flat.itemsize for s in stride])
  return np.array(view)


def _collect(obj: Any, data: Dict[str, np.ndarray], path: str) -> Dict[str, np.ndarray]:
  """The unpickled object as {name: array}; it must be a flat mapping of names to tensors."""
  if not isinstance(obj, dict):
    raise ConfigError(f"{path}: holds a {type(obj).__name__}, not a state dict (name -> tensor)")
  out = {}
  for name, value in obj.items():
    if not isinstance(name, str) or not isinstance(value, _TensorRef):
      raise ConfigError(f"{path}: entry {name!r} is not a tensor; expected a state dict "
                        "(name -> tensor)")
    out[name] = _materialise(value, data, path)
  return out


def _read_zip(path: str) -> Dict[str, np.ndarray]:
  """A state dict saved in torch's zip format (`<archive>/data.pkl` + `<archive>/data/<key>`)."""
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
      raise ConfigError(f"{path}: a zip file but not a torch checkpoint (no <archive>/data.pkl)")
    prefix = pickles[0][:-len("data.pkl")]
    names = set(archive.namelist())
    byteorder = "little"
    if prefix + "byteorder" in names:
      byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
    if byteorder not in ("little", "big"):
      raise ConfigError(f"{path}: unknown byte order {byteorder!r}")
    with archive.open(pickles[0]) as f:
      unpickler = _RestrictedUnpickler(f, path, legacy=False)
      obj = unpickler.load()
    data = {}
    for key, storage in unpickler.storages.items():
      record = f"{prefix}data/{key}"
      if record not in names:
        raise ConfigError(f"{path}: storage {record} is missing (file truncated?)")
      raw = archive.read(record)
      dtype = storage.dtype.newbyteorder("<" if byteorder == "little" else ">")
      if len(raw) < storage.numel * dtype.itemsize:
        raise ConfigError(f"{path}: storage {record} is shorter than its {storage.numel} elements")
      data[key] = np.frombuffer(raw, dtype, storage.numel).astype(storage.dtype)
  return _collect(obj, data, path)


def _read_legacy(path: str) -> Dict[str, np.ndarray]:
  """A state dict in torch's legacy stream format (torch < 1.6 or _use_new_zipfile_serialization=False).

  Layout: pickles of the magic number, the protocol version and sys_info; the
  pickled object (storages as persistent ids); the pickled list of storage
  keys; then per key an int64 element count followed by the raw elements.
  """
  with open(path, "rb") as f:
    def load_small():
      return _RestrictedUnpickler(f, path, legacy=True).load()
    if load_small() != _TORCH_MAGIC_NUMBER:
      raise ConfigError(f"{path}: not a torch checkpoint (neither the zip nor the legacy format)")
    version = load_small()
    if version != _TORCH_PROTOCOL_VERSION:
      raise ConfigError(f"{path}: unsupported torch legacy protocol version {version!r}")
    sys_info = load_small()
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    unpickler = _RestrictedUnpickler(f, path, legacy=True)
    obj = unpickler.load()
    keys = load_small()
    order = "<" if little else ">"
    data = {}
    for key in keys:
      key = str(key)
      storage = unpickler.storages.get(key)
      if storage is None:
        raise ConfigError(f"{path}: data for storage {key} that no tensor uses")
      header = f.read(8)
      if len(header) != 8:
        raise ConfigError(f"{path}: ends before the data of storage {key} (file truncated?)")
      numel = int(np.frombuffer(header, order + "i8")[0])
      if numel != storage.numel:
        raise ConfigError(f"{path}: storage {key} holds {numel} elements, the pickle says "
                          f"{storage.numel}")
      dtype = storage.dtype.newbyteorder(order)
      raw = f.read(numel * dtype.itemsize)
      if len(raw) != numel * dtype.itemsize:
        raise ConfigError(f"{path}: ends inside the data of storage {key} (file truncated?)")
      data[key] = np.frombuffer(raw, dtype).astype(storage.dtype)
    missing = sorted(set(unpickler.storages) - set(data))
    if missing:
      raise ConfigError(f"{path}: no data for storages {missing[:5]} (file truncated?)")
  return _collect(obj, data, path)


def read_torch_state_dict(path: str) -> Dict[str, np.ndarray]:
  """{name: numpy array} of a torch state dict file (zip or legacy format), without importing torch.

  Only float32 and int64 tensors are supported; a pickle that references any
  global other than torch's tensor-rebuilding functions, storage classes and
  OrderedDict is refused (no code from the file is ever run).
  """
  try:
    if zipfile.is_zipfile(path):
      return _read_zip(path)
    return _read_legacy(path)
  except ConfigError:
    raise
  except (OSError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
          AttributeError, IndexError, KeyError) as e:
    raise ConfigError(f"{path}: cannot be read as a torch state dict ({type(e).__name__}: {e}); "
                      f"corrupt, truncated or not the file {WEIGHTS_FILE}?") from e


# ----------------------------------------------------------------------------
# Mapping the state dict to Flax variables.

# Flax variable name -> (torch parameter name, layout change).
_TORCH_NAMES = {
    ("params", "conv", "kernel"): ("weight", lambda w: w.transpose(2, 3, 1, 0)),  # OIHW -> HWIO
    ("params", "bn", "scale"): ("weight", None),
    ("params", "bn", "bias"): ("bias", None),
    ("batch_stats", "bn", "mean"): ("running_mean", None),
    ("batch_stats", "bn", "var"): ("running_var", None),
    ("params", "fc", "kernel"): ("weight", lambda w: w.T),
    ("params", "fc", "bias"): ("bias", None),
}


def _variable_shapes() -> PyTree:
  """ShapeDtypeStructs of FIDInceptionV3's variables (traced, nothing computed)."""
  x = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  return jax.eval_shape(FIDInceptionV3().init, jax.random.PRNGKey(0), x)


def state_dict_to_variables(state: Dict[str, np.ndarray], source: str = "state dict") -> PyTree:
  """pytorch-fid's Inception state dict -> FIDInceptionV3 variables {'params', 'batch_stats'}.

  Every variable needs its torch entry with the right shape; an entry that
  matches no variable is an error too (num_batches_tracked is ignored).
  """
  shapes = _variable_shapes()
  used, missing, wrong = set(), [], []

  def convert(path, shape):
    keys = [p.key for p in path]
    collection, module, leaf = keys[0], keys[-2], keys[-1]
    torch_leaf, transform = _TORCH_NAMES[(collection, module, leaf)]
    name = ".".join(keys[1:-1] + [torch_leaf])
    if name not in state:
      missing.append(name)
      return None
    used.add(name)
    value = np.asarray(state[name])
    if transform is not None and value.ndim == len(shape.shape):
      value = transform(value)
    if value.shape != shape.shape:
      wrong.append(f"{name}: {np.asarray(state[name]).shape}")
      return None
    return jnp.asarray(value.astype(np.float32))

  variables = jax.tree_util.tree_map_with_path(convert, shapes)
  unexpected = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
  problems = []
  if missing:
    problems.append(f"{len(missing)} missing entries (e.g. {', '.join(missing[:3])})")
  if wrong:
    problems.append(f"{len(wrong)} entries of the wrong shape (e.g. {', '.join(wrong[:3])})")
  if unexpected:
    problems.append(f"{len(unexpected)} unexpected entries (e.g. {', '.join(unexpected[:3])})")
  if problems:
    raise ConfigError(f"{source} is not pytorch-fid's FID Inception ({WEIGHTS_FILE}): "
                      + "; ".join(problems))
  return variables


def load_params(path: str) -> PyTree:
  """FIDInceptionV3 variables {'params', 'batch_stats'} from a pytorch-fid weights file (torch not needed)."""
  return state_dict_to_variables(read_torch_state_dict(path), source=path)


# ----------------------------------------------------------------------------
# Finding (and once downloading) the weights file.


def cache_path() -> str:
  """Where the weights are cached: $XDG_CACHE_HOME/gan_jax/<file>, default ~/.cache/gan_jax/<file>."""
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "gan_jax", WEIGHTS_FILE)


def download(url: str, out) -> None:
  """Writes the body of `url` to the binary file object `out` (tests replace this function)."""
  with urllib.request.urlopen(url, timeout=60) as response:
    while True:
      chunk = response.read(1 << 20)
      if not chunk:
        break
      out.write(chunk)


def _how_to_provide(reason: str) -> str:
  """The message telling the user how to supply the weights file."""
  return (f"The FID Inception weights are needed and {reason}. Download {WEIGHTS_FILE} "
          f"from {WEIGHTS_URL} and pass it with "
          f"{CONFIG_FLAG}=/path/to/{WEIGHTS_FILE}, or set the environment variable "
          f"{ENV_VAR}=/path/to/{WEIGHTS_FILE}, or put it at {cache_path()}.")


def _sha256(path: str) -> str:
  """Hex sha256 of a file."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _download_to_cache(target: str) -> None:
  """Downloads the weights into `target` via a temporary file, checking the sha256 prefix."""
  folder = os.path.dirname(target)
  os.makedirs(folder, exist_ok=True)
  fd, temp = tempfile.mkstemp(prefix=WEIGHTS_FILE + ".", suffix=".part", dir=folder)
  logging.info("downloading the FID Inception weights from %s to %s", WEIGHTS_URL, target)
  try:
    with os.fdopen(fd, "wb") as out:
      download(WEIGHTS_URL, out)
    digest = _sha256(temp)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
      raise ConfigError(_how_to_provide(
          f"the file downloaded from {WEIGHTS_URL} has sha256 {digest}, not one starting with "
          f"{WEIGHTS_SHA256_PREFIX} (download corrupted or intercepted?); nothing was kept"))
    os.replace(temp, target)
  finally:
    if os.path.exists(temp):
      os.remove(temp)


def resolve_weights(path: Optional[str] = None) -> str:
  """The path of the FID Inception weights file.

  In order: `path` (from config.eval.inception_path), the environment variable
  GAN_JAX_INCEPTION, the cache file (see `cache_path`), else download it once
  into the cache. A given path or variable that names no file is an error (no
  download then); if the download fails, ConfigError says how to provide it.
  """
  for value, origin in ((path, f"{CONFIG_FLAG}={path}"),
                        (os.environ.get(ENV_VAR), f"{ENV_VAR}={os.environ.get(ENV_VAR)}")):
    if value:
      value = os.path.expanduser(value)
      if not os.path.isfile(value):
        raise ConfigError(_how_to_provide(f"{origin} names no file ({value} does not exist)"))
      return value
  target = cache_path()
  if os.path.isfile(target):
    return target
  try:
    _download_to_cache(target)
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # network, proxy, disk: all the same to the user
    raise ConfigError(_how_to_provide(
        f"{target} does not exist and downloading it failed ({type(e).__name__}: {e})")) from e
  return target


def load_inception(path: Optional[str] = None) -> PyTree:
  """FIDInceptionV3 variables from the weights file `resolve_weights(path)` finds."""
  return load_params(resolve_weights(path))
