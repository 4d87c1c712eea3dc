"""Batch selection from (seed, position) and the host / device feeders."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import parallel
from gan_jax.data import DeviceFeeder, EpochSampler, HostFeeder, make_feeder
from gan_jax.errors import ConfigError


def numbered_images(n, size=2):
  """Image i is filled with the value i (so a batch says which images it holds)."""
  return np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 3), np.uint8)


def test_sampler_epochs_are_permutations():
  sampler = EpochSampler(10, seed=3)
  first, second = sampler.indices(0, 10), sampler.indices(10, 10)
  assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
  assert not np.array_equal(first, second)


def test_sampler_is_a_pure_function_of_seed_and_position():
  """Any slicing of the stream gives the same indices: what makes resume exact."""
  whole = EpochSampler(7, seed=1).indices(0, 40)
  pieces = np.concatenate([EpochSampler(7, seed=1).indices(s, 8) for s in range(0, 40, 8)])
  np.testing.assert_array_equal(whole, pieces)
  np.testing.assert_array_equal(EpochSampler(7, seed=1).indices(33, 5), whole[33:38])
  assert not np.array_equal(EpochSampler(7, seed=2).indices(0, 40), whole)


def test_host_feeder_batches():
  images = numbered_images(20)
  feeder = HostFeeder(images, batch_size=8, d_steps=2, seed=0, mesh=parallel.make_mesh())
  batch = feeder.batch(3)
  assert batch.shape == (2, 8, 2, 2, 3) and len(batch.sharding.device_set) == len(jax.devices())
  expected = images[feeder.sampler.indices(3 * 16, 16)].reshape(2, 8, 2, 2, 3)
  np.testing.assert_array_equal(np.asarray(batch), expected)


def test_device_feeder_gives_each_device_its_own_shard_once_per_epoch():
  """8 devices x 8 images each; batch 16 = 2 per device: an epoch is 4 steps."""
  mesh = parallel.make_mesh()
  assert mesh.size == 8
  feeder = DeviceFeeder(numbered_images(64), batch_size=16, d_steps=1, seed=0, mesh=mesh)
  assert len(feeder.images.sharding.device_set) == 8
  epoch = np.stack([np.asarray(feeder.batch(s))[0, :, 0, 0, 0] for s in range(4)])  # (step, 16)
  for device in range(8):
    seen = epoch[:, 2 * device:2 * device + 2].ravel()
    assert sorted(seen) == list(range(8 * device, 8 * device + 8))
  next_epoch = np.stack([np.asarray(feeder.batch(s))[0, :, 0, 0, 0] for s in range(4, 8)])
  assert sorted(next_epoch.ravel()) == list(range(64)) and not np.array_equal(epoch, next_epoch)


def test_device_feeder_is_a_pure_function_of_step_and_crosses_epochs():
  mesh = parallel.make_mesh()
  a = DeviceFeeder(numbered_images(24 * 8), batch_size=64, d_steps=2, seed=5, mesh=mesh)
  b = DeviceFeeder(numbered_images(24 * 8), batch_size=64, d_steps=2, seed=5, mesh=mesh)
  assert a.batch(7).shape == (2, 64, 2, 2, 3)
  for step in (0, 1, 7, 1000, 123456):  # 16 per device per step, 24 per shard: epochs wrap
    np.testing.assert_array_equal(np.asarray(a.batch(step)), np.asarray(b.batch(step)))
  # Steps 0, 1, 2 read stream positions 0..47 of device 0: exactly two epochs of its shard.
  device0 = np.concatenate([np.asarray(a.batch(s))[:, :8, 0, 0, 0].ravel() for s in range(3)])
  assert sorted(device0[:24]) == list(range(24)) and sorted(device0[24:]) == list(range(24))
  assert not np.array_equal(np.asarray(a.batch(1)), np.asarray(a.batch(2)))


def test_device_feeder_drops_the_remainder_and_refuses_tiny_sets():
  mesh = parallel.make_mesh()
  feeder = DeviceFeeder(numbered_images(67), batch_size=16, d_steps=1, seed=0, mesh=mesh)
  assert feeder.num_dropped == 3 and feeder.num_local == 8
  with pytest.raises(ConfigError, match="data.feed='host'"):
    DeviceFeeder(numbered_images(40), batch_size=64, d_steps=1, seed=0, mesh=mesh)


@pytest.mark.parametrize("cls", [HostFeeder, DeviceFeeder])
def test_horizontal_flips(cls):
  images = np.zeros((64, 2, 2, 3), np.uint8)
  images[:, :, 0] = 255  # left column white
  mesh = parallel.make_mesh()
  plain = cls(images, batch_size=64, d_steps=1, seed=0, mesh=mesh, hflip=False)
  assert (np.asarray(plain.batch(0))[..., 0, 0] == 255).all()
  flipping = cls(images, batch_size=64, d_steps=1, seed=0, mesh=mesh, hflip=True)
  batches = [np.asarray(flipping.batch(s)) for s in range(4)]
  flipped = np.mean([(b[0, :, 0, 0, 0] == 0).mean() for b in batches])
  assert 0.3 < flipped < 0.7  # about half
  np.testing.assert_array_equal(batches[1], np.asarray(flipping.batch(1)))  # same step, same flips


def test_auto_chooses_by_size():
  mesh = parallel.make_mesh()
  images = numbered_images(64)
  kwargs = dict(batch_size=16, d_steps=1, seed=0, mesh=mesh)
  assert make_feeder(images, feed="auto", **kwargs).mode == "device"
  assert make_feeder(images, feed="auto", device_budget_gb=1e-9, **kwargs).mode == "host"
  assert make_feeder(images, feed="host", **kwargs).mode == "host"
  few = dict(kwargs, d_steps=5)  # 80 images an iteration, 64 in the set: too few to shard
  assert make_feeder(images, feed="auto", **few).mode == "host"
  with pytest.raises(ConfigError, match="choose from: auto, device, host"):
    make_feeder(images, feed="gpu", **kwargs)


def test_pipeline_feed_modes(tmp_path, monkeypatch):
  from conftest import write_synthetic_faces  # pylint: disable=g-import-not-at-top
  from configs import dcgan  # pylint: disable=g-import-not-at-top
  from gan_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  config = dcgan.get_config("smoke")
  config.data.source = write_synthetic_faces(str(tmp_path / "faces"), count=32, size=16)
  config.data.cache_dir = str(tmp_path / "cache")
  kwargs = dict(batch_size=16, d_steps=1, seed=0, mesh=parallel.make_mesh())
  for feed, mode in (("auto", "device"), ("device", "device"), ("host", "host"),
                     ("stream", "stream")):
    config.data.feed = feed
    feeder, summary = pipeline.make_pipeline(config.data, **kwargs)
    assert feeder.mode == mode, feed
    assert ("streaming 30 images" in summary) == (mode == "stream")  # 0000, 0020 held out
    feeder.close()
  monkeypatch.setattr(pipeline, "HOST_BUDGET_GB", 1e-9)  # "too large to decode"
  config.data.feed = "auto"
  assert pipeline.make_pipeline(config.data, **kwargs)[0].mode == "stream"
  config.data.feed = "tape"
  with pytest.raises(ConfigError, match="choose from: auto, device, host, stream"):
    pipeline.make_pipeline(config.data, **kwargs)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permute_index_is_a_permutation(n):
  from gan_jax.data.permutation import permute_index  # pylint: disable=g-import-not-at-top
  image = np.asarray(permute_index(np.arange(n), jax.random.PRNGKey(n), n))
  assert sorted(image.tolist()) == list(range(n))


@pytest.mark.parametrize("n", [3, 17, 1000, 4097])
def test_unrolled_walk_steps_change_nothing(n):
  """The walk steps unrolled before the loop (for GPUs) give the loop-only permutation."""
  from gan_jax.data.permutation import permute_index  # pylint: disable=g-import-not-at-top
  f = jax.jit(permute_index, static_argnums=(2, 3))
  for seed in range(3):
    key = jax.random.PRNGKey(seed)
    np.testing.assert_array_equal(f(np.arange(n), key, n, 8), f(np.arange(n), key, n, 0))


def test_permute_index_depends_on_the_key_and_looks_uniform():
  from gan_jax.data.permutation import permute_index  # pylint: disable=g-import-not-at-top
  n, trials = 10, 4000
  first = jax.jit(jax.vmap(lambda k: permute_index(np.arange(n), k, n)[0]))(
      jax.random.split(jax.random.PRNGKey(0), trials))
  counts = np.bincount(np.asarray(first), minlength=n)
  # Where index 0 lands, over 4000 keys: ~400 per slot. Chi-square with 9 dof: < 27.9 at p=0.001.
  chi2 = ((counts - trials / n) ** 2 / (trials / n)).sum()
  assert chi2 < 27.9, counts
  with pytest.raises(ValueError):
    permute_index(np.arange(1), jax.random.PRNGKey(0), 0)


def test_stream_feeder_gives_the_host_feeders_batches(tmp_path):
  """On clean data streaming and host feeding read the same (seed, step) stream."""
  from conftest import write_synthetic_faces  # pylint: disable=g-import-not-at-top
  from gan_jax.data import ImagePolicy, StreamFeeder, list_images, load_images  # pylint: disable=g-import-not-at-top
  folder = write_synthetic_faces(str(tmp_path), count=24, size=8)
  policy = ImagePolicy(8)
  images, _ = load_images(folder, policy)
  entries, _ = list_images(folder)
  kwargs = dict(batch_size=16, d_steps=2, seed=3, mesh=parallel.make_mesh(), hflip=True)
  host = HostFeeder(images, **kwargs)
  stream = StreamFeeder(entries, policy, prefetch=3, **kwargs)
  for step in (0, 1, 2, 7, 3):  # out of order too: a resume starts anywhere
    np.testing.assert_array_equal(np.asarray(stream.batch(step)), np.asarray(host.batch(step)))
  stream.close()


def test_stream_feeder_replaces_unusable_images_deterministically(tmp_path):
  from conftest import write_synthetic_faces  # pylint: disable=g-import-not-at-top
  from gan_jax.data import ImagePolicy, StreamFeeder, list_images  # pylint: disable=g-import-not-at-top
  folder = write_synthetic_faces(str(tmp_path), count=8, size=8)
  (tmp_path / "0003.png").write_bytes(b"broken")
  entries, _ = list_images(folder)
  kwargs = dict(batch_size=8, d_steps=1, seed=0, mesh=parallel.make_mesh())
  a = StreamFeeder(entries, ImagePolicy(8), **kwargs)
  b = StreamFeeder(entries, ImagePolicy(8), prefetch=1, **kwargs)
  batches = [np.asarray(a.batch(s)) for s in range(3)]
  for s in (2, 0, 1):
    np.testing.assert_array_equal(np.asarray(b.batch(s)), batches[s])
  assert a.skipped_counts() == {"unreadable": 1}
  assert a.skipped()[0][0].endswith("0003.png")
  # The broken image's slot holds its successor, 0004.png: it appears twice per epoch.
  epoch = batches[0][0]
  counts = [sum((img == ref).all() for img in epoch) for ref in epoch]
  assert sorted(counts) == [1] * 6 + [2, 2]
  a.close()
  b.close()


@pytest.mark.parametrize("labelled", [False, True])
def test_device_feeder_select_inside_jit_gives_batch(labelled):
  """select(device_data(), step), traced into a caller's jit, is batch(step), labels too."""
  mesh = parallel.make_mesh()
  labels = np.arange(72, dtype=np.int32)[:, None] * [1, 2] if labelled else None
  feeder = DeviceFeeder(numbered_images(72), batch_size=16, d_steps=2, seed=4, mesh=mesh,
                        hflip=True, labels=labels)
  assert HostFeeder(numbered_images(72), batch_size=16, d_steps=2, seed=4,
                    mesh=mesh).device_data() is None
  data = feeder.device_data()
  assert len(data) == (2 if labelled else 1)
  selected = jax.jit(lambda data, step: feeder.select(data, step + 1))
  for step in (0, 4, 1000):
    got, want = selected(data, jnp.int32(step - 1)), feeder.batch(step)
    assert type(got) is type(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      assert a.sharding.is_equivalent_to(b.sharding, a.ndim)
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fused_step_trains_bit_identically_to_the_fed_step(smoke_config, fusion_emitters):
  """FedStep with a DeviceFeeder (selection compiled into the step, batch from state.step)
  == the plain jitted step fed batch(step): every state array and metric bit-identical,
  on 8 devices, with labels and flips, across an epoch boundary, from a nonzero step.

  One case only (each compiles a step twice): a conditional DCGAN, whose step runs the
  unconditional one's convolutions on the same uint8 batch plus the label gather. The
  unlabelled selection is checked above; training runs use the fused path throughout."""
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  from gan_jax.fed_step import FedStep  # pylint: disable=g-import-not-at-top
  from test_step import same  # pylint: disable=g-import-not-at-top
  config = smoke_config
  config.data.labels = "anime_hair_eyes"  # a conditional DCGAN (no data is read)
  mesh = parallel.make_mesh()
  replicated = parallel.replicated(mesh)
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  init = train.make_init(config, g, d, g_tx, d_tx)
  shardings = jax.tree.map(lambda _: replicated, jax.eval_shape(init))
  start = jax.device_put(jax.jit(init)().replace(step=jnp.int32(5)), shardings)
  rng = np.random.default_rng(0)
  size = config.data.image_size
  images = rng.integers(0, 256, (40, size, size, 3), np.uint8)  # 5 a device, 2 a step
  labels = rng.integers(0, 13, (40, 2)).astype(np.int32)
  feeder = DeviceFeeder(images, batch_size=16, d_steps=1, seed=1, mesh=mesh, hflip=True,
                        labels=labels)
  step_fn = train.make_step(config, g, d, g_tx, d_tx)
  out_shardings = (shardings, replicated)
  fused = FedStep(step_fn, feeder, start, train.make_batch_spec(config, mesh), out_shardings)
  fed = jax.jit(step_fn, donate_argnums=0, out_shardings=out_shardings)
  assert fused.fused
  a, b = jax.tree.map(jnp.copy, start), jax.tree.map(jnp.copy, start)
  for step in range(5, 8):
    a, metrics_a = fused(a, step)
    b, metrics_b = fed(b, feeder.batch(step))
    assert same(metrics_a, metrics_b), step
  assert int(a.step) == 8 and same(a, b)
  assert same(fused.last_batch(7), feeder.batch(7))
