"""From `config.data` to a feeder: source -> (decode + cache | stream) -> batches on devices.

Two kinds of data share the training loop: images (tfds:, folder:, zip: or a
path; uint8 batches) and the toy lab's points (toy:ring8, toy:grid25; float32
batches drawn on the devices). `example_spec` gives one example's shape and
dtype, `make_sample_report` how generated samples are shown and scored.
With `data.labels` set (data/labels.py) only labelled images are used and every
batch is a LabeledBatch(images, int32 labels), from memory or streamed.
"""

from typing import Callable, Dict, Tuple

import numpy as np
from jax.sharding import Mesh

from gan_jax import plots, sampling, writers
from gan_jax.data import feeding, labels as labels_lib, sources, streaming, toy
from gan_jax.data.images import ImagePolicy
from gan_jax.errors import ConfigError
from gan_jax.registry import check_choice

FEEDS = ("auto", "device", "host", "stream")
HOST_BUDGET_GB = 32.0  # auto streams a dataset whose decoded array would exceed this
DEVICE_BUDGET_GB = 4.0  # auto keeps a dataset on device when each device's share fits


def policy_of(data_config) -> ImagePolicy:
  """The ImagePolicy that `config.data` describes."""
  return ImagePolicy(size=data_config.image_size, crop=data_config.crop,
                     max_upscale=data_config.max_upscale)


def toy_mixture(data_config):
  """The toy Mixture `data_config.source` names ('toy:NAME'), or None for image data."""
  scheme, _, name = data_config.source.partition(":")
  return toy.get_mixture(name) if scheme == "toy" else None


def validate(data_config) -> None:
  """Raises ValueError naming what is wrong with `config.data` (nothing is read)."""
  if toy_mixture(data_config) is not None:
    return
  try:
    sources.parse(data_config.source)
  except ValueError as e:
    raise ValueError(f"{e} (or toy: for the toy lab's points)") from None
  if data_config.image_size <= 0:
    raise ValueError(f"data.image_size must be positive, got {data_config.image_size}")
  policy_of(data_config)
  check_choice("data.feed", data_config.feed, FEEDS)
  if data_config.split not in sources.SPLITS:
    raise ValueError(f"unknown data.split {data_config.split!r}; choose from: '' (all), "
                     "train, test")


def label_classes(data_config) -> Tuple[int, ...]:
  """Classes per label head of `config.data.labels` (e.g. (13, 13)); () when unlabelled."""
  if toy_mixture(data_config) is not None:
    return ()
  label_set = labels_lib.label_set_of(data_config)
  return label_set.num_classes if label_set is not None else ()


def decode_split(data_config, split: str, max_images: int = 0):
  """(uint8 images, int32 labels or None, one-line summary) of `split` of config.data's
  source, decoded with its policy and cache; only labelled images when data.labels is set."""
  source = sources.make_source(data_config.source, tfds_dir=data_config.tfds_dir, split=split)
  policy = policy_of(data_config)
  cache = dict(cache_dir=data_config.cache_dir or None, use_cache=data_config.cache)
  label_set = labels_lib.label_set_of(data_config)
  if label_set is None:
    images, report = sources.decode_source(source, policy, max_images, **cache)
    return images, None, report.summary()
  images, labels, report, label_report = labels_lib.decode_labelled(
      source, label_set, data_config, policy, max_images, **cache)
  return images, labels, f"{report.summary()}; {label_report.summary()}"


def example_spec(data_config) -> Tuple[Tuple[int, ...], np.dtype]:
  """(shape, dtype) of one training example: ((size, size, 3), uint8) for images,
  ((dim,), float32) for toy points."""
  mixture = toy_mixture(data_config)
  if mixture is not None:
    return (mixture.dim,), np.dtype(np.float32)
  return (data_config.image_size, data_config.image_size, 3), np.dtype(np.uint8)


SampleReport = Callable[[np.ndarray], Tuple[np.ndarray, Dict[str, float]]]


def make_sample_report(data_config) -> SampleReport:
  """f(generated samples) -> (uint8 picture, scalars): a grid of images, or for toy data a
  scatter plot over the data plus modes covered and the high-quality fraction."""
  mixture = toy_mixture(data_config)
  if mixture is None:
    def image_report(samples):
      return writers.make_grid(np.asarray(sampling.to_uint8(samples))), {}
    return image_report
  reference = np.asarray(mixture.sample(toy.reference_key(), 2500))

  def toy_report(samples):
    picture = plots.scatter(samples, extent=mixture.extent, reference=reference,
                            centers=mixture.centers)
    return picture, {f"toy/{k}": v for k, v in toy.mode_metrics(samples, mixture).items()}
  return toy_report


def make_pipeline(data_config, *, batch_size: int, d_steps: int, seed: int,
                  mesh: Mesh) -> Tuple[object, str]:
  """(feeder, one-line summary of what was loaded and how it is fed).

  feed 'stream' (or 'auto' for a dataset over HOST_BUDGET_GB decoded) decodes
  batches on the fly; otherwise the source is decoded once (cached) and fed
  from device memory ('device'; 'auto' if each device's share fits in
  DEVICE_BUDGET_GB) or host memory ('host').
  """
  mixture = toy_mixture(data_config)
  if mixture is not None:
    feeder = toy.ToyFeeder(mixture, batch_size=batch_size, d_steps=d_steps, seed=seed, mesh=mesh)
    return feeder, f"{mixture.describe()}, sampled on the devices from (seed, step)"
  feed = data_config.feed
  check_choice("data.feed", feed, FEEDS, ConfigError)
  policy = policy_of(data_config)
  source = sources.make_source(data_config.source, tfds_dir=data_config.tfds_dir,
                               split=data_config.split)
  label_set = labels_lib.label_set_of(data_config)
  by_name, label_clause, with_labels = None, "", ""
  if label_set is not None:
    source, by_name, label_report = labels_lib.labelled_source(source, label_set, data_config)
    label_clause, with_labels = f"; {label_report.summary()}", " with labels"
  if feed == "auto":
    entries, _ = source.entries()
    decoded_gb = len(entries) * policy.size**2 * 3 / 2**30
    feed = "stream" if decoded_gb > HOST_BUDGET_GB else "auto"
  if feed == "stream":
    entries, _ = source.entries()
    if data_config.max_images > 0:
      entries = entries[:data_config.max_images]
    labels = None if by_name is None else labels_lib.labels_of(
        [name for name, _ in entries], by_name, label_set)
    feeder = streaming.StreamFeeder(
        entries, policy, batch_size=batch_size, d_steps=d_steps, seed=seed, mesh=mesh,
        hflip=data_config.hflip, prefetch=data_config.prefetch, labels=labels)
    return feeder, (f"streaming {len(entries)} images from {source.spec}, decoded "
                    f"{data_config.prefetch} batches ahead{label_clause}")
  cache = dict(cache_dir=data_config.cache_dir or None, use_cache=data_config.cache)
  if by_name is None:
    images, report = sources.decode_source(source, policy, data_config.max_images, **cache)
    labels = None
  else:
    images, labels, report = labels_lib.decode_labelled_source(
        source, by_name, label_set, policy, data_config.max_images, **cache)
  feeder = feeding.make_feeder(images, feed=feed, batch_size=batch_size, d_steps=d_steps,
                               seed=seed, mesh=mesh, hflip=data_config.hflip,
                               device_budget_gb=DEVICE_BUDGET_GB, labels=labels)
  return feeder, (f"{report.summary()}{label_clause}; fed from {feeder.mode} memory"
                  f"{with_labels}")
