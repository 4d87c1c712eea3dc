"""From `config.data` to a feeder: source -> (decode + cache | stream) -> batches on devices."""

from typing import Tuple

from jax.sharding import Mesh

from gan_jax.data import feeding, sources, streaming
from gan_jax.data.images import ImagePolicy
from gan_jax.errors import ConfigError

FEEDS = ("auto", "device", "host", "stream")
HOST_BUDGET_GB = 32.0  # auto streams a dataset whose decoded array would exceed this
DEVICE_BUDGET_GB = 4.0  # auto keeps a dataset on device when each device's share fits


def policy_of(data_config) -> ImagePolicy:
  """The ImagePolicy that `config.data` describes."""
  return ImagePolicy(size=data_config.image_size, crop=data_config.crop,
                     max_upscale=data_config.max_upscale)


def make_pipeline(data_config, *, batch_size: int, d_steps: int, seed: int,
                  mesh: Mesh) -> Tuple[object, str]:
  """(feeder, one-line summary of what was loaded and how it is fed).

  feed 'stream' (or 'auto' for a dataset over HOST_BUDGET_GB decoded) decodes
  batches on the fly; otherwise the source is decoded once (cached) and fed
  from device memory ('device'; 'auto' if each device's share fits in
  DEVICE_BUDGET_GB) or host memory ('host').
  """
  feed = data_config.feed
  if feed not in FEEDS:
    raise ConfigError(f"unknown data.feed {feed!r}; choose from: {', '.join(FEEDS)}")
  policy = policy_of(data_config)
  source = sources.make_source(data_config.source, tfds_dir=data_config.tfds_dir)
  if feed == "auto":
    entries, _ = source.entries()
    decoded_gb = len(entries) * policy.size**2 * 3 / 2**30
    feed = "stream" if decoded_gb > HOST_BUDGET_GB else "auto"
  if feed == "stream":
    entries, _ = source.entries()
    if data_config.max_images > 0:
      entries = entries[:data_config.max_images]
    feeder = streaming.StreamFeeder(
        entries, policy, batch_size=batch_size, d_steps=d_steps, seed=seed, mesh=mesh,
        hflip=data_config.hflip, prefetch=data_config.prefetch)
    return feeder, (f"streaming {len(entries)} images from {source.spec}, decoded "
                    f"{data_config.prefetch} batches ahead")
  images, report = sources.decode_source(
      source, policy, data_config.max_images, cache_dir=data_config.cache_dir or None,
      use_cache=data_config.cache)
  feeder = feeding.make_feeder(images, feed=feed, batch_size=batch_size, d_steps=d_steps,
                               seed=seed, mesh=mesh, hflip=data_config.hflip,
                               device_budget_gb=DEVICE_BUDGET_GB)
  return feeder, f"{report.summary()}; fed from {feeder.mode} memory"
