"""The train step: phase isolation, composition, EMA, and data parallelism."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcgan, toy_ring
from conftest import set_fields
from gan_jax import parallel, train
from gan_jax.step import ema_decay_at, batch_to_float, join_microbatches, split_microbatches


def tiny(d_steps=1, batch=16, optimizer="adam", **overrides):
  """(step_fn, state, images) for a tiny DCGAN on 16x16 random uint8 images."""
  config = dcgan.get_config("smoke")
  config.train.d_steps = d_steps
  config.train.batch_size = batch
  config.optim.name = optimizer
  set_fields(config, overrides, "__")
  size = config.data.image_size
  images = np.random.default_rng(0).integers(0, 256, (d_steps, batch, size, size, 3), np.uint8)
  return (*step_and_state(config), jnp.asarray(images))


def step_and_state(config):
  """(GANStep, its initial TrainState) of `config`, models and optimizers built from it."""
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  return train.make_step(config, g, d, g_tx, d_tx), jax.jit(train.make_init(config, g, d, g_tx,
                                                                             d_tx))()


def same(a, b) -> bool:
  """Bit-identical pytrees."""
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def test_batch_to_float_range():
  x = batch_to_float(jnp.array([0, 255, 128], jnp.uint8))
  np.testing.assert_allclose(x, [-1.0, 1.0, 128 / 127.5 - 1.0], atol=1e-7)
  points = jnp.array([[0.5, -3.0]], jnp.float32)
  assert batch_to_float(points) is points  # float data (toy points) is not rescaled
  with pytest.raises(TypeError, match="uint8 images or floats"):
    batch_to_float(jnp.array([1, 2], jnp.int32))


def test_d_phase_moves_only_the_discriminator():
  step, state, images = tiny()
  new, metrics = jax.jit(step.d_update)(state, batch_to_float(images[0]), jax.random.PRNGKey(3))
  for field in ("g_params", "g_stats", "g_opt_state", "ema_params", "step", "key"):
    assert same(getattr(state, field), getattr(new, field)), field
  for field in ("d_params", "d_stats", "d_opt_state"):
    assert not same(getattr(state, field), getattr(new, field)), field
  assert set(metrics) == {"d_loss", "d_real", "d_fake", "d_grad_norm"}


def test_g_phase_moves_only_the_generator():
  step, state, images = tiny()
  new, metrics = jax.jit(step.g_update)(state, batch_to_float(images[0]), jax.random.PRNGKey(3))
  for field in ("d_params", "d_stats", "d_opt_state", "step", "key"):
    assert same(getattr(state, field), getattr(new, field)), field
  for field in ("g_params", "g_stats", "g_opt_state", "ema_params"):
    assert not same(getattr(state, field), getattr(new, field)), field
  assert set(metrics) == {"g_loss", "g_grad_norm"}


def test_step_is_d_steps_discriminator_updates_then_one_generator_update():
  """__call__ == d_update(fold_in(k, 0)), d_update(fold_in(k, 1)), g_update(fold_in(k, 2))."""
  step, state, images = tiny(d_steps=2)
  state = state.replace(step=jnp.int32(7))
  real = batch_to_float(images)

  @jax.jit
  def by_hand(s):
    k = jax.random.fold_in(s.key, s.step)
    s, m0 = step.d_update(s, real[0], jax.random.fold_in(k, 0))
    s, m1 = step.d_update(s, real[1], jax.random.fold_in(k, 1))
    s, mg = step.g_update(s, real[1], jax.random.fold_in(k, 2))
    return s.replace(step=s.step + 1), (m0, m1, mg)

  expected, (m0, m1, mg) = by_hand(state)
  got, metrics = jax.jit(step)(state, images)
  assert int(got.step) == 8
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["d_loss"], (m0["d_loss"] + m1["d_loss"]) / 2, rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], mg["g_loss"], rtol=1e-5)
  assert not np.isclose(m0["d_fake"], m1["d_fake"])  # fresh z (and updated D) per D step


def test_scanned_d_updates_are_the_unrolled_ones():
  """train.d_loop=scan: the same d_steps D updates (keys, batches, metrics' mean) as the
  unrolled loop, to float rounding, with one D update in the program instead of d_steps."""
  unrolled, state, images = tiny(d_steps=3)
  scanned, _, _ = tiny(d_steps=3, train__d_loop="scan")
  state = state.replace(step=jnp.int32(4))
  a, metrics_a = jax.jit(unrolled)(state, images)
  b, metrics_b = jax.jit(scanned)(state, images)
  for x, y in zip(jax.tree.leaves((a, metrics_a)), jax.tree.leaves((b, metrics_b))):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  convs = lambda step: str(jax.make_jaxpr(step)(state, images)).count("conv_general_dilated")
  assert convs(scanned) < convs(unrolled)
  config = dcgan.get_config("smoke")
  config.train.d_loop = "vmap"
  with pytest.raises(train.ConfigError, match="unknown train.d_loop 'vmap'; choose from: "
                     "unroll, scan"):
    train.validate_config(config)


def test_fused_d_passes_are_the_separate_ones_with_per_half_statistics():
  """train.d_passes=fused: D's loss on reals and fakes in one call (half the convolutions
  in the D update) gives the separate calls' gradients, so the same update (SGD, so that
  the parameters follow the gradient); BatchNorm's running averages advance once, by the
  mean of what each half alone would give from the same start (separate calls: one after
  the other)."""
  separate, state, images = tiny(optimizer="sgd")
  fused, _, _ = tiny(optimizer="sgd", train__d_passes="fused")
  real = batch_to_float(images[0])
  key = jax.random.PRNGKey(5)
  a, metrics_a = jax.jit(separate.d_update)(state, real, key)
  b, metrics_b = jax.jit(fused.d_update)(state, real, key)
  for x, y in zip(jax.tree.leaves((a.d_params, metrics_a)), jax.tree.leaves((b.d_params, metrics_b))):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  assert not same(a.d_params, state.d_params)
  # The statistics by hand: D in train mode on the reals and on the fakes of this update.
  z = separate.sample_latent(jax.random.fold_in(key, 0), (real.shape[0], separate.latent_dim))
  fake, _ = separate._g(state.g_params, state.g_stats, z, None, key)
  d_stats = lambda stats, x: jax.jit(separate._d)(state.d_params, stats, x, None)[2]
  after_real, after_fake = d_stats(state.d_stats, real), d_stats(state.d_stats, fake)
  for x, y in zip(jax.tree.leaves(b.d_stats),
                  jax.tree.leaves(jax.tree.map(lambda r, f: (r + f) / 2, after_real, after_fake))):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  for x, y in zip(jax.tree.leaves(a.d_stats), jax.tree.leaves(d_stats(after_real, fake))):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  convs = lambda step: str(jax.make_jaxpr(step.d_update)(state, real, key)).count(
      "conv_general_dilated")
  assert convs(fused) < convs(separate)
  config = dcgan.get_config("smoke")
  config.train.d_passes = "concat"
  with pytest.raises(train.ConfigError, match="unknown train.d_passes 'concat'; choose from: "
                     "separate, fused"):
    train.validate_config(config)


def test_fused_d_passes_are_refused_on_several_devices():
  """Over a data-parallel mesh the vmapped halves would be gathered onto every device (an
  all-gather of the whole batch in the HLO), so training refuses fused passes there."""
  config = dcgan.get_config("smoke")
  config.train.d_passes = "fused"
  train.check_d_passes(config, parallel.make_mesh(jax.devices()[:1]))
  with pytest.raises(train.ConfigError, match="train.d_passes='fused' runs on one device only: "
                     "on these 8 devices"):
    train.check_d_passes(config, parallel.make_mesh(jax.devices()))
  config.train.d_passes = "separate"
  train.check_d_passes(config, parallel.make_mesh(jax.devices()))
  step, state, images = tiny(train__d_passes="fused")
  *_, hlo, _ = run_on_devices(jax.devices(), step, state, images, steps=1)
  assert "all-gather" in hlo  # what the refusal avoids


def test_fused_d_passes_advance_a_spectral_norm_once():
  """With a spectrally normalised D, the fused pass advances the power iteration once per
  D update (the separate calls twice) and trains to the same losses to float rounding."""
  separate, state, images = tiny(model__d_spectral_norm=True, model__d_norm="none")
  fused, _, _ = tiny(model__d_spectral_norm=True, model__d_norm="none", train__d_passes="fused")
  real, key = batch_to_float(images[0]), jax.random.PRNGKey(5)
  a, metrics_a = jax.jit(separate.d_update)(state, real, key)
  b, metrics_b = jax.jit(fused.d_update)(state, real, key)
  once = jax.jit(separate._d)(state.d_params, state.d_stats, real, None)[2]
  twice = jax.jit(separate._d)(state.d_params, once, real, None)[2]
  assert same(b.d_stats, once) and same(a.d_stats, twice) and not same(once, twice)
  np.testing.assert_allclose(metrics_a["d_real"], metrics_b["d_real"], rtol=1e-5)  # same sigma
  for name in ("d_loss", "d_fake"):  # the fakes' sigma is one power iteration behind
    np.testing.assert_allclose(metrics_a[name], metrics_b[name], rtol=1e-2, atol=1e-2)


def test_microbatches_are_strided_rows_and_join_back_in_order():
  x = jnp.arange(12).reshape(6, 2)
  micro = split_microbatches(x, 2)
  np.testing.assert_array_equal(micro[:, :, 0], [[0, 4, 8], [2, 6, 10]])  # rows 0,2,4 | 1,3,5
  np.testing.assert_array_equal(join_microbatches(micro), x)
  np.testing.assert_array_equal(split_microbatches(x, 1)[0], x)


@pytest.mark.parametrize("model", [
    {},
    # BEGAN's auto-encoder D and its equilibrium controller: k moves by the update's mean
    # reconstruction errors, the same whether the batch is whole or accumulated.
    {"model.name": "began", "loss.name": "began", "loss.began.k0": 0.5},
])
def test_accumulated_microbatches_give_the_full_batch_update(model):
  """train.microbatches=4 on the toy ring (MLPs: no batch statistics; no draws but z): a D
  update and a G update whose gradients are the means over 4 micro-batches of 4 points
  equal the full batch's, so the whole iteration is the same to float rounding (SGD, so
  that the parameters follow the gradients). The micro-batched program runs D on 4 points."""
  def toy(**overrides):
    config = toy_ring.get_config()
    set_fields(config, {"train.batch_size": 16, "train.d_steps": 1, "optim.name": "sgd",
                        "optim.d_lr": 0.05, "optim.g_lr": 0.05, **model, **overrides})
    g, d = train.make_models(config)
    g_tx, d_tx = train.make_optimizers(config)
    return (train.make_step(config, g, d, g_tx, d_tx),
            jax.jit(train.make_init(config, g, d, g_tx, d_tx))())
  full, state = toy()
  micro, _ = toy(**{"train.microbatches": 4})
  points = jax.random.normal(jax.random.PRNGKey(1), (1, 16, 2))
  a, metrics_a = jax.jit(full)(state, points)
  b, metrics_b = jax.jit(micro)(state, points)
  assert not same(a.d_params, state.d_params) and not same(a.g_params, state.g_params)
  if model:  # the controller moved k, the same way in both
    assert float(a.d_stats["began_k"]) != 0.5
  assert set(metrics_a) == set(metrics_b)
  for x, y in zip(jax.tree.leaves((a, metrics_a)), jax.tree.leaves((b, metrics_b))):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  points_of = lambda step, n: f"f32[{n},2]" in str(jax.make_jaxpr(step)(state, points))
  assert points_of(micro, 4) and not points_of(full, 4)  # D and G on 4 points at a time


def test_microbatches_must_divide_every_devices_rows():
  config = dcgan.get_config("smoke")
  config.train.batch_size = 16
  config.train.microbatches = 3
  with pytest.raises(train.ConfigError, match="microbatches=3 must be a positive divisor of "
                     "train.batch_size=16"):
    train.validate_config(config)
  config.train.microbatches = 4
  train.validate_config(config)
  train.check_microbatches(config, parallel.make_mesh(jax.devices()[:1]))
  with pytest.raises(train.ConfigError, match=r"batch per device \(train.batch_size=16 over 8 "
                     r"device\(s\): 2\)"):
    train.check_microbatches(config, parallel.make_mesh(jax.devices()))


def test_step_is_a_pure_function_of_state_and_images():
  step, state, images = tiny()
  f = jax.jit(step)
  a, ma = f(state, images)
  b, mb = f(state, images)
  assert same(a, b) and same(ma, mb)
  c, _ = f(state.replace(step=jnp.int32(1)), images)  # another step draws other z
  assert not same(a.g_params, c.g_params)


def test_ema_follows_the_ramp():
  np.testing.assert_allclose(ema_decay_at(jnp.int32(0), 0.999, True), 0.1)
  np.testing.assert_allclose(ema_decay_at(jnp.int32(90), 0.999, True), 91 / 100)
  np.testing.assert_allclose(ema_decay_at(jnp.int32(10**6), 0.999, True), 0.999)
  np.testing.assert_allclose(ema_decay_at(jnp.int32(0), 0.999, False), 0.999)
  moving = lambda t: 0.9 + t / 1000  # a decay that is a function of the iteration
  np.testing.assert_allclose(ema_decay_at(jnp.int32(50), moving, False), 0.95, rtol=1e-6)
  np.testing.assert_allclose(ema_decay_at(jnp.int32(5), moving, True), 6 / 15, rtol=1e-6)
  step, state, images = tiny()
  new, _ = jax.jit(step)(state, images)
  expected = jax.tree.map(lambda e, p: 0.1 * e + 0.9 * p, state.ema_params, new.g_params)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(new.ema_params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_unmarked_tests_mesh_every_device():
  assert parallel.make_mesh().devices.size == len(jax.devices()) == 8


@pytest.mark.mesh_devices(2)
def test_the_mesh_devices_mark_sets_the_default_mesh_only(smoke_config, tmp_path):
  """conftest's mark: the default mesh is the first 2 devices (train's too); a mesh of
  named devices is as named."""
  assert list(parallel.make_mesh().devices) == jax.devices()[:2]
  assert parallel.make_mesh(jax.devices()[3:6]).devices.size == 3
  smoke_config.train.num_steps = 0  # the state is made on train's mesh; nothing to train
  state = train.train_and_evaluate(smoke_config, str(tmp_path))
  assert state.step.sharding.mesh.devices.size == 2


def run_on_devices(devices, step, state, images, steps=3):
  """`steps` iterations with the batch split over `devices` and the state replicated."""
  mesh = parallel.make_mesh(devices)
  replicated = parallel.replicated(mesh)
  shardings = jax.tree.map(lambda _: replicated, state)
  batch = jax.device_put(images, parallel.batch_sharding(mesh, batch_axis=1))
  state = jax.device_put(state, shardings)
  f = jax.jit(step, out_shardings=(shardings, replicated)).lower(state, batch).compile()
  history = []
  for _ in range(steps):
    state, metrics = f(state, batch)
    history.append(metrics)
  return state, history, f.as_text(), batch


@pytest.mark.parametrize("optimizer, options", [
    ("sgd", {}), ("adam", {}),
    # The kernel gradient's custom_vjp contracts the sharded batch; ADA's p and r are global;
    # gradient accumulation splits each device's own rows (no gather of the batch), with
    # BatchNorm's statistics per micro-batch global over the devices.
    ("sgd", {"model__upconv": "stacked_gemm", "augment__policy": "translation",
             "augment__p": 0.5, "augment__ada_target": 0.6, "train__microbatches": 2}),
    # The transformer D with ViTGAN's fixes (attention mixes a sample's own tokens only)
    # and consistency regularisation (per-sample random shifts).
    ("sgd", {"model__discriminator": "vit", "model__vit__attention": "l2",
             "model__d_spectral_norm": True, "model__vit__improved_sn": True,
             "model__vit__patch_overlap": 2, "penalty__use": "cr"}),
])
def test_eight_devices_match_one_device(optimizer, options):
  """Data parallel over 8 devices == the same global batch on 1 device.

  Not bit-identical: each device sums its slice, then the slices' sums are
  added (gradients and the synchronised BatchNorm statistics alike), a
  different float summation order than one device summing the whole batch.
  Measured after 3 steps: parameters differ by at most 1.1e-8 (SGD) and
  8.9e-8 (Adam, whose first steps divide a gradient by its own magnitude and
  so amplify rounding in near-zero gradients); metrics by 3e-7 and 4e-6
  relative. The tolerances leave a margin of ~10x over that.
  """
  assert len(jax.devices()) == 8, "conftest sets 8 CPU devices"
  step, state, images = tiny(optimizer=optimizer, optim__d_lr=0.02 if optimizer == "sgd" else 2e-4,
                             **options)
  one, h1, _, _ = run_on_devices(jax.devices()[:1], step, state, images)
  eight, h8, hlo, batch = run_on_devices(jax.devices(), step, state, images)
  assert len(batch.sharding.device_set) == 8
  assert batch.addressable_shards[0].data.shape == (1, 2, 16, 16, 3)  # 16 images / 8 devices
  assert "all-reduce" in hlo  # gradients (and BatchNorm statistics) are averaged across devices
  assert "all-gather" not in hlo and "all-to-all" not in hlo  # the batch stays where it is
  for m1, m8 in zip(h1, h8):
    for k in m1:
      np.testing.assert_allclose(m1[k], m8[k], rtol=4e-5, atol=1e-6, err_msg=k)
  # The transformer D's state: 2.7e-5 relative apart at most (its class token, whose large
  # gradients SGD follows), so its margin is ~4x.
  rtol = 1e-4 if options.get("model__discriminator") == "vit" else 1e-5
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def test_unconditional_dcgan_step_is_unchanged_by_the_generator_options():
  """The StyleGAN2-only options are off for other families, and handing G rngs it does
  not use changes nothing: one DCGAN step with g_rngs=('noise',) is bit-identical."""
  step, state, images = tiny(data__image_size=8, batch=4)
  assert (step.g_rngs, step.style_mixing, step.path_length) == ((), 0.0, None)
  with_rngs = dataclasses.replace(step, g_rngs=("noise",))
  a, b = jax.jit(lambda s, x: (step(s, x), with_rngs(s, x)))(state, images)
  assert same(a, b)
