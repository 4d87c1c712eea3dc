"""StyleGAN2 family (gan_jax/models/stylegan2.py): layers against direct references,
shapes, parameter count, noise modes, style mixing, the tracked w average and truncation,
a tiny train step with noise, mixing and path-length regularisation on, and the
class-conditional StyleGAN2 (configs/stylegan2_tags.py)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import dcgan as dcgan_config
from configs import stylegan2 as stylegan2_config
from configs import stylegan2_tags
from conftest import set_fields
from gan_jax import sampling, train
from gan_jax.data import LabeledBatch
from gan_jax.models import stylegan2
from gan_jax.state import count_params
from gan_jax.step import MIXING_STREAM, PathLength


def tiny_config(g_width=4, d_width=4, latent_dim=8, **extra):
  """A model config with the fields build_stylegan2 reads."""
  return ml_collections.ConfigDict(dict(name="stylegan2", g_width=g_width, d_width=d_width,
                                        latent_dim=latent_dim, **extra))


def reference_conv(x, w):
  """Plain 'SAME' k x k convolution of x (H, W, I) with w (k, k, I, O), in float64 numpy."""
  k = w.shape[0]
  p = k // 2
  h, wd, _ = x.shape
  xp = np.pad(x, ((p, p), (p, p), (0, 0)))
  out = np.zeros((h, wd, w.shape[3]))
  for dy in range(k):
    for dx in range(k):
      out += xp[dy:dy + h, dx:dx + wd] @ w[dy, dx]
  return out


def abstract_init_and_apply(module, x):
  """(variables, module(x)) as shapes and dtypes only (jax.eval_shape: nothing compiled)."""
  variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False), x[:1])
  return variables, jax.eval_shape(lambda v, x: module.apply(v, x, train=False), variables, x)


def numpy_params(module, x, seed=0):
  """Parameters of `module` for input like `x`, filled with N(0, 1) draws (no init compile)."""
  shapes = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False), x)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype),
                      shapes["params"])


@pytest.mark.parametrize("size", [16, 32])
def test_shapes(size):
  g, d = stylegan2.build_stylegan2(tiny_config(mapping_layers=1), (size, size, 3))
  z = jnp.zeros((2, 8))
  g_vars, images = abstract_init_and_apply(g, z)
  assert images.shape == (2, size, size, 3) and images.dtype == jnp.float32
  d_vars, logits = abstract_init_and_apply(d, jnp.zeros(images.shape))
  assert logits.shape == (2,)
  assert set(g_vars) == {"params", "batch_stats"} and set(d_vars) == {"params"}
  assert g_vars["batch_stats"]["w_avg"].shape == (8,)  # w_dim = latent_dim
  assert g_vars["params"]["synthesis"]["const"].shape == (4, 4, 4 * size // 4)
  assert d_vars["params"]["fromrgb"]["kernel"].shape == (1, 1, 3, 4)


def test_parameter_count():
  """16x16, g_width=d_width=8, latent 16, 2 mapping layers: channels 32 (4x4), 16 (8x8), 8 (16x16)."""
  g, d = stylegan2.build_stylegan2(
      tiny_config(g_width=8, d_width=8, latent_dim=16, mapping_layers=2), (16, 16, 3))
  w = 16
  dense = lambda i, o: i * o + o
  styled = lambda i, o: dense(w, i) + 9 * i * o + 1 + o  # affine, kernel, noise strength, bias
  rgb = lambda i: dense(w, i) + i * 3 + 3
  g_expected = (dense(16, w) + dense(w, w) + 4 * 4 * 32
                + styled(32, 32) + rgb(32)
                + styled(32, 16) + styled(16, 16) + rgb(16)
                + styled(16, 8) + styled(8, 8) + rgb(8))
  conv = lambda k, i, o, bias=True: k * k * i * o + (o if bias else 0)
  block = lambda i, o: conv(1, i, o, bias=False) + conv(3, i, i) + conv(3, i, o)
  d_expected = (conv(1, 3, 8) + block(8, 16) + block(16, 32)
                + conv(3, 33, 32) + dense(32 * 16, 32) + dense(32, 1))
  key = jax.random.PRNGKey(0)
  g_params = jax.eval_shape(lambda: g.init(key, jnp.zeros((1, 16)), train=False))["params"]
  d_params = jax.eval_shape(lambda: d.init(key, jnp.zeros((1, 16, 16, 3)), train=False))["params"]
  assert count_params(g_params) == g_expected
  assert count_params(d_params) == d_expected


@pytest.mark.parametrize("impl", ["grouped", "scaled"])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_reference(impl, demodulate):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 6, 5, 4))
  weight = rng.normal(size=(3, 3, 4, 5)) / 6
  styles = rng.normal(size=(3, 4)) + 1.0
  got = stylegan2.modulated_conv(jnp.asarray(x, jnp.float32), jnp.asarray(weight, jnp.float32),
                                 jnp.asarray(styles, jnp.float32), demodulate, impl=impl)
  for n in range(3):
    w = weight * styles[n][None, None, :, None]
    if demodulate:
      w = w / np.sqrt(np.sum(w**2, axis=(0, 1, 2)) + 1e-8)
    np.testing.assert_allclose(got[n], reference_conv(x[n], w), rtol=1e-5, atol=1e-5)


def test_demodulation_keeps_unit_variance():
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  x = jax.random.normal(keys[0], (4, 20, 20, 64))
  weight = jax.random.normal(keys[1], (3, 3, 64, 64))
  styles = jnp.exp(jax.random.normal(keys[2], (4, 64)))  # very uneven channel scales
  y = stylegan2.modulated_conv(x, weight, styles, True, padding="VALID")
  per_channel = y.std(axis=(1, 2))
  np.testing.assert_allclose(per_channel, 1.0, atol=0.3)
  np.testing.assert_allclose(y.std(), 1.0, atol=0.03)


def test_equalised_dense_and_conv_scale_at_runtime():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(5, 40)), jnp.float32)
  layer = stylegan2.EqualDense(7, lr_mul=0.01, bias_init=0.5)
  params = layer.init(jax.random.PRNGKey(0), x)["params"]
  # Stored as N(0, 1/lr_mul^2) and bias_init / lr_mul; effective N(0, 1/fan_in) and bias_init.
  assert abs(float(params["kernel"].std()) * 0.01 - 1.0) < 0.1
  np.testing.assert_allclose(params["bias"] * 0.01, 0.5, rtol=1e-6)
  params = {"kernel": jnp.asarray(rng.normal(size=(40, 7)), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=(7,)), jnp.float32)}
  expected = x @ (params["kernel"] * 0.01 / math.sqrt(40)) + params["bias"] * 0.01
  np.testing.assert_allclose(layer.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-6)

  xc = rng.normal(size=(2, 5, 6, 3))
  conv = stylegan2.EqualConv(4, 3)
  kernel, bias = rng.normal(size=(3, 3, 3, 4)), rng.normal(size=(4,))
  got = conv.apply({"params": {"kernel": jnp.asarray(kernel, jnp.float32),
                               "bias": jnp.asarray(bias, jnp.float32)}},
                   jnp.asarray(xc, jnp.float32))
  for n in range(2):
    expected = reference_conv(xc[n], kernel / math.sqrt(27)) + bias
    np.testing.assert_allclose(got[n], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,group", [(8, 4), (6, 4), (3, 4), (1, 4), (8, 2)])
def test_minibatch_stddev_matches_numpy(batch, group):
  x = np.random.default_rng(3).normal(size=(batch, 4, 4, 6))
  got = np.asarray(stylegan2.minibatch_stddev(jnp.asarray(x, jnp.float32), group))
  g = min(group, batch)
  while batch % g:
    g -= 1
  groups = batch // g
  assert got.shape == (batch, 4, 4, 7)
  np.testing.assert_allclose(got[..., :6], x, rtol=1e-6)
  for j in range(groups):
    members = [i for i in range(batch) if i % groups == j]
    stat = np.sqrt(x[members].var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(got[members, :, :, 6], stat, rtol=1e-5)


def test_upsample_is_bilinear():
  x = jax.random.normal(jax.random.PRNGKey(4), (2, 5, 3, 2))
  np.testing.assert_allclose(stylegan2.upsample2x(x),
                             jax.image.resize(x, (2, 10, 6, 2), "bilinear"), atol=1e-6)


def test_noise_random_with_rng_else_constant():
  g, _ = stylegan2.build_stylegan2(tiny_config(mapping_layers=1), (8, 8, 3))
  z = jax.random.normal(jax.random.PRNGKey(0), (2, 8))
  params = numpy_params(g, z)
  is_strength = lambda path: "noise_strength" in jax.tree_util.keystr(path)
  assert sum(is_strength(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)) == 3
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.ones_like(v) if is_strength(p) else v, params)
  with_rng = jax.jit(lambda z, key: g.apply({"params": params}, z, train=True,
                                            rngs={"noise": key}))
  const = jax.jit(lambda z: g.apply({"params": params}, z, train=True))  # as the train step
  np.testing.assert_array_equal(const(z), const(z))
  a, b = with_rng(z, jax.random.PRNGKey(5)), with_rng(z, jax.random.PRNGKey(6))
  assert not np.allclose(a, b) and not np.allclose(a, const(z))
  np.testing.assert_array_equal(a, with_rng(z, jax.random.PRNGKey(5)))
  # The constant noise is one image shared by the batch: equal z give equal images (to
  # float rounding: XLA:CPU may vectorise two batch rows differently; per-sample noise of
  # strength 1 would differ by O(1)).
  same_z = const(jnp.stack([z[0], z[0]]))
  np.testing.assert_allclose(same_z[0], same_z[1], rtol=1e-5, atol=1e-6)


def test_style_mixing():
  g, _ = stylegan2.build_stylegan2(tiny_config(mapping_layers=1), (8, 8, 3))
  z, z2 = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 8))
  variables = {"params": numpy_params(g, z)}
  mix = jax.jit(lambda z, z2, layer: g.apply(variables, z, train=False, z2=z2, mix_layer=layer))
  plain = jax.jit(lambda z: g.apply(variables, z, train=False))
  num_ws = stylegan2.SynthesisNetwork.num_ws(8)
  np.testing.assert_allclose(mix(z, z2, num_ws), plain(z), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(mix(z, z2, 0), plain(z2), rtol=1e-6, atol=1e-6)
  mixed = mix(z, z2, 2)
  assert not np.allclose(mixed, plain(z)) and not np.allclose(mixed, plain(z2))


@pytest.mark.parametrize("shape", [(12, 12, 3), (4, 4, 3), (16, 8, 3), (16, 3), (0, 0, 3)])
def test_bad_sizes_raise(shape):
  with pytest.raises(ValueError, match="StyleGAN2 needs"):
    stylegan2.build_stylegan2(tiny_config(), shape)


def test_bad_discriminator_input_size():
  _, d = stylegan2.build_stylegan2(tiny_config(), (16, 16, 3))
  with pytest.raises(ValueError, match="built for 16x16"):
    d.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)), train=False)


def tiny_models(recipe=stylegan2_config, **overrides):
  """(config, generator, discriminator, step_fn) of `recipe`'s smoke preset (default
  configs/stylegan2.py) at 8x8 (one mapping layer, latent 8, batch 4) with `overrides`
  ('section.field': value)."""
  config = recipe.get_config("smoke")
  config.model.mapping_layers = 1
  config.model.latent_dim = 8
  config.train.batch_size = 4
  set_fields(config, overrides)
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  return config, g, d, train.make_step(config, g, d, g_tx, d_tx)


def tiny_step(**overrides):
  """(step_fn, state, images) of tiny_models(**overrides), with random uint8 images."""
  config, g, d, step = tiny_models(**overrides)
  state = jax.jit(train.make_init(config, g, d, step.g_tx, step.d_tx))()
  images = np.random.default_rng(0).integers(0, 256, (1, 4, 8, 8, 3), np.uint8)
  return step, state, jnp.asarray(images)


def with_noise_strength(params, value=1.0):
  """`params` with every layer's noise strength set to `value` (they start at 0)."""
  return jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.full_like(v, value) if "noise_strength" in jax.tree_util.keystr(p) else v,
      params)


def test_training_noise_is_fresh_per_key_and_deterministic_per_key():
  _, g, _, step = tiny_models(**{"model.style_mixing": 0.0})
  assert step.g_rngs == ("noise",)
  z = jnp.zeros((2, 8))  # equal latents: any difference between the samples is noise
  params = with_noise_strength(numpy_params(g, z))
  stats = {"w_avg": jnp.zeros((8,)), "pl_mean": jnp.zeros(())}
  g = jax.jit(lambda key: step._g(params, stats, z, None, key)[0])  # pylint: disable=protected-access
  a, b = g(jax.random.PRNGKey(1)), g(jax.random.PRNGKey(2))
  np.testing.assert_array_equal(a, g(jax.random.PRNGKey(1)))
  assert not np.allclose(a, b)
  assert not np.allclose(a[0], a[1])  # fresh per sample too
  assert tiny_models(**{"model.noise": "const"})[-1].g_rngs == ()
  with pytest.raises(ValueError, match="unknown model.noise 'fresh'; choose from: random, const"):
    tiny_models(**{"model.noise": "fresh"})


def test_style_mixing_uses_the_second_latent_only_where_it_mixes():
  g, _ = stylegan2.build_stylegan2(tiny_config(mapping_layers=1), (8, 8, 3))
  z, z2, z3 = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 8))
  variables = {"params": numpy_params(g, z)}
  num_ws = g.num_ws
  layers = jnp.array([num_ws, 2, 1])  # sample 0 does not mix
  mix = jax.jit(lambda z2: g.apply(variables, z, train=True, z2=z2, mix_layer=layers))
  a, b = np.asarray(mix(z2)), np.asarray(mix(z3))
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.allclose(a[1], b[1]) and not np.allclose(a[2], b[2])
  # The step's draws: crossovers in [1, num_ws) with probability style_mixing, else num_ws.
  step = tiny_models(**{"model.style_mixing": 0.5})[-1]
  assert step.style_mixing == 0.5
  options = step._g_options(jax.random.PRNGKey(3), 1000)  # pylint: disable=protected-access
  layer = np.asarray(options["mix_layer"])
  assert options["z2"].shape == (1000, 8) and layer.min() >= 1 and layer.max() <= num_ws
  assert 0.4 < np.mean(layer < num_ws) < 0.6
  np.testing.assert_array_equal(layer, step._g_options(jax.random.PRNGKey(3), 1000)["mix_layer"])  # pylint: disable=protected-access
  mix_key = jax.random.fold_in(jax.random.PRNGKey(3), MIXING_STREAM)
  np.testing.assert_array_equal(options["z2"], jax.random.normal(jax.random.fold_in(mix_key, 0),
                                                                 (1000, 8)))
  with pytest.raises(ValueError, match="style_mixing must be a probability"):
    tiny_models(**{"model.style_mixing": 1.5})


def test_w_average_tracking_and_truncation():
  g, _ = stylegan2.build_stylegan2(tiny_config(mapping_layers=1), (8, 8, 3))
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  stats = {"w_avg": jnp.full((8,), 0.3), "pl_mean": jnp.zeros(())}
  params = with_noise_strength(numpy_params(g, z), 0.5)

  @jax.jit
  def run(params, stats, z):
    variables = {"params": params, "batch_stats": stats}
    w = g.apply(variables, z, method="ws")[:, 0]
    _, new = g.apply(variables, z, train=True, mutable=["batch_stats"])
    images = {psi: sampling.generate(g, params, stats, z, truncation_psi=psi)
              for psi in (0.0, 0.5, 1.0)}
    plain = g.apply(variables, z)
    return w, new["batch_stats"]["w_avg"], images, plain

  w, w_avg, images, plain = run(params, stats, z)
  np.testing.assert_allclose(w_avg, w.mean(0) + 0.995 * (0.3 - w.mean(0)), rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(images[1.0], plain)  # psi = 1: off
  for i in range(1, 4):  # psi = 0: every z gives w_avg's image (the noise is fixed)
    np.testing.assert_allclose(images[0.0][i], images[0.0][0], rtol=1e-5, atol=1e-5)
  assert not np.allclose(images[0.5], plain) and not np.allclose(images[0.5][0], images[0.5][1])
  with pytest.raises(ValueError, match="needs the tracked w average"):
    sampling.generate(g, params, {}, z, truncation_psi=0.5)
  dcgan = train.make_models(dcgan_config.get_config("smoke"))[0]
  with pytest.raises(ValueError, match="has no truncation trick"):
    sampling.generate(dcgan, {}, {}, z, truncation_psi=0.5)


def test_train_step_with_noise_mixing_and_lazy_path_length():
  """Every StyleGAN2 training piece on: path length (and R1) on iteration 0 of every 2
  (finite, updating its running mean), skipped on iteration 1, the same whether the step
  skips them with a lax.cond or computes and drops them; w_avg tracked; zero weight is off."""
  step, state, images = tiny_step(**{"penalty.r1.every": 2,  # lazy R1 too
                                     "g_penalty.path_length.weight": 2.0,
                                     "g_penalty.path_length.every": 2,
                                     "model.style_mixing": 0.9})
  assert step.path_length == PathLength(2.0, 2, 0.01, 2) and step.g_rngs == ("noise",)
  f = jax.jit(step)
  one, m0 = f(state, images)
  two, m1 = f(one, images)
  assert np.isfinite(float(m0["path_length_penalty"])) and float(m0["path_length_penalty"]) > 0
  assert float(one.g_stats["pl_mean"]) > 0 and float(m1["path_length_penalty"]) == 0
  np.testing.assert_array_equal(two.g_stats["pl_mean"], one.g_stats["pl_mean"])
  assert all(np.isfinite(float(v)) for m in (m0, m1) for v in m.values())
  assert not np.array_equal(one.g_stats["w_avg"], state.g_stats["w_avg"])
  # The lazy terms as a lax.cond (skipped on off-iterations; the accelerators' form) give
  # what computing them and selecting (the CPU's form, this step's) gave.
  assert step.lazy_branching == "select"
  cond = jax.jit(dataclasses.replace(step, lazy_branching="cond"))
  one_cond, m0_cond = cond(state, images)
  two_cond, m1_cond = cond(one_cond, images)
  for ours, theirs in ((two, two_cond), (m0, m0_cond), (m1, m1_cond)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6),
                 ours, theirs)
  assert float(m1_cond["path_length_penalty"]) == 0
  config = stylegan2_config.get_config("smoke")
  config.g_penalty.path_length.weight = 0.0
  assert train.make_path_length(config) is None  # the step then is the one without it
  config.g_penalty.path_length.weight, config.g_penalty.path_length.every = 2.0, 0
  with pytest.raises(ValueError, match="every >= 1"):
    train.make_path_length(config)
  dcgan = dcgan_config.get_config("smoke")
  dcgan.model.style_mixing = 0.5
  with pytest.raises(train.ConfigError, match="style_mixing: model 'dcgan' has no style mixing"):
    train.validate_config(dcgan)


def test_fused_d_passes_keep_the_minibatch_stddev_per_half():
  """train.d_passes=fused runs D once on reals and fakes, yet each half's minibatch
  standard deviation comes from its own images, as in separate calls (one call on the
  concatenated batch would mix reals and fakes in its strided groups)."""
  separate, state, images = tiny_step()
  fused, _, _ = tiny_step(**{"train.d_passes": "fused"})
  real = jnp.asarray(images[0], jnp.float32) / 127.5 - 1.0
  fake = jax.random.uniform(jax.random.PRNGKey(1), real.shape, minval=-1.0, maxval=1.0)
  run = lambda step: jax.jit(step._d_on_real_and_fake)(state.d_params, state.d_stats,
                                                       real, fake, None)
  (real_a, _, fake_a, _, _), (real_b, _, fake_b, _, _) = run(separate), run(fused)
  np.testing.assert_allclose(real_b, real_a, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(fake_b, fake_a, rtol=1e-5, atol=1e-6)
  concatenated = separate._d(state.d_params, state.d_stats, jnp.concatenate([real, fake]),
                             None)[0]
  assert not np.allclose(concatenated[:4], real_a, rtol=1e-3)


def test_conditional_mapping_and_projection_by_hand():
  """Conditional StyleGAN2 (StyleGAN2-ADA's conditioning): w = mapping([z / rms(z), e / rms(e)])
  with e the sum of the labels' embeddings, so scaling the embeddings changes nothing; D's
  logit moves with the labels by <E[y] - E[y'], phi>, phi its last hidden features."""
  config = tiny_config(mapping_layers=1, label_embed_dim=3, d_cond="projection")
  g, d = stylegan2.build_stylegan2(config, (8, 8, 3), label_classes=(3, 4))
  z = jax.random.normal(jax.random.PRNGKey(0), (3, 8))
  labels = jnp.array([[0, 1], [2, 3], [1, 0]], jnp.int32)
  other = jnp.array([[2, 3], [2, 3], [0, 2]], jnp.int32)  # sample 1's labels unchanged
  shapes = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z, labels, train=False))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype),
                        shapes["params"])
  mapping = params["mapping"]
  table = mapping["label_embedding"]
  e = np.asarray(table["head_0"]["embedding"])[labels[:, 0]] + np.asarray(
      table["head_1"]["embedding"])[labels[:, 1]]
  rms = lambda v: v / np.sqrt(np.mean(np.square(v), axis=-1, keepdims=True) + 1e-8)
  x = np.concatenate([rms(np.asarray(z, np.float64)), rms(e)], axis=-1)
  dense = mapping["dense_0"]
  y = x @ (np.asarray(dense["kernel"]) * 0.01 / math.sqrt(11)) + np.asarray(dense["bias"]) * 0.01
  w_by_hand = np.where(y >= 0, y, 0.2 * y) * math.sqrt(2.0)
  ws = jax.jit(lambda p, y: g.apply({"params": p}, z, y, method="ws"))
  np.testing.assert_allclose(ws(params, labels)[:, 0], w_by_hand, rtol=1e-5, atol=1e-6)
  scaled = {**params, "mapping": {**mapping, "label_embedding": jax.tree.map(
      lambda t: 5.0 * t, table)}}
  np.testing.assert_allclose(ws(scaled, labels), ws(params, labels), rtol=1e-5, atol=1e-6)
  assert not np.allclose(ws(params, other)[0], ws(params, labels)[0])
  with pytest.raises(ValueError, match="is conditional .* call it with labels"):
    g.apply({"params": params}, z)

  images = jax.random.uniform(jax.random.PRNGKey(1), (3, 8, 8, 3), minval=-1, maxval=1)
  variables = d.init(jax.random.PRNGKey(2), images, labels)
  logits, state = d.apply(variables, images, labels, capture_intermediates=True)
  phi = stylegan2.lrelu(state["intermediates"]["b4_dense"]["__call__"][0])
  projection = variables["params"]["conditional"]["projection"]
  emb = lambda y: (projection["head_0"]["embedding"][y[:, 0]]
                   + projection["head_1"]["embedding"][y[:, 1]])
  diff = logits - d.apply(variables, images, other)
  np.testing.assert_allclose(diff, jnp.sum((emb(labels) - emb(other)) * phi, axis=1), rtol=1e-4,
                             atol=1e-6)
  assert float(diff[1]) == 0.0 and float(jnp.min(jnp.abs(diff[::2]))) > 1e-6


def test_conditional_train_step_maps_both_latents_and_path_lengths_with_the_labels():
  """configs/stylegan2_tags.py's step with style mixing and path length on every iteration:
  other labels change the path-length penalty too (its latents are drawn from the key, so
  only the labels can), a batch without labels is refused, and truncation at psi = 0 gives
  every sample the one average w's image whatever its labels."""
  config, g, d, step = tiny_models(stylegan2_tags, **{
      "penalty.use": "", "g_penalty.path_length.weight": 2.0,
      "g_penalty.path_length.every": 1, "model.style_mixing": 0.9})
  train.validate_config(config)
  assert step.path_length is not None and g.label_classes == d.label_classes == (13, 13)
  state = jax.jit(train.make_init(config, g, d, step.g_tx, step.d_tx))()
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 4, 8, 8, 3), np.uint8))
  labels = jnp.asarray([[[0, 1], [2, 3], [4, 5], [6, 7]]], jnp.int32)
  f = jax.jit(step)
  one, metrics = f(state, LabeledBatch(images, labels))
  again, _ = f(state, LabeledBatch(images, labels))
  other, other_metrics = f(state, LabeledBatch(images, (labels + 1) % 13))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert float(metrics["path_length_penalty"]) > 0
  assert float(metrics["path_length_penalty"]) != float(other_metrics["path_length_penalty"])
  np.testing.assert_array_equal(one.g_params["mapping"]["dense_0"]["kernel"],
                                again.g_params["mapping"]["dense_0"]["kernel"])
  assert not np.array_equal(one.g_params["mapping"]["dense_0"]["kernel"],
                            other.g_params["mapping"]["dense_0"]["kernel"])
  with pytest.raises(ValueError, match="is conditional"):
    f(state, images)
  z = jax.random.normal(jax.random.PRNGKey(3), (4, 8))
  truncated = sampling.generate(g, one.ema_params, one.g_stats, z, labels=labels[0],
                                truncation_psi=0.0)
  np.testing.assert_allclose(truncated, jnp.broadcast_to(truncated[:1], truncated.shape),
                             rtol=1e-5, atol=1e-5)
  plain = sampling.generate(g, one.ema_params, one.g_stats, z, labels=labels[0])
  assert not np.allclose(plain[0], plain[1])


def test_label_truncation_centres_are_each_labels_own_average_w():
  """Conditional truncation: label_w_avg is the mean of w over the latents for each sample's
  labels (checked against ws one latent at a time); truncating towards it at psi = 0 gives
  every sample its own label's centre image, the same for equal labels and different for
  others, and psi = 0.5 lands half way; sampling.label_w_centers computes it once per
  distinct label row, in padded chunks, to the same values."""
  config = tiny_config(mapping_layers=2, label_embed_dim=3)
  g, _ = stylegan2.build_stylegan2(config, (8, 8, 3), label_classes=(3, 4))
  labels = jnp.array([[0, 1], [2, 3], [0, 1], [1, 0]], jnp.int32)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  latents = jax.random.normal(jax.random.PRNGKey(1), (5, 8))
  shapes = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z, labels, train=False))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype),
                        shapes["params"])
  params = with_noise_strength(params, 0.5)
  w_of = jax.jit(lambda z, y: g.apply({"params": params}, z, y, method="ws")[:, 0])
  by_hand = np.mean([w_of(jnp.broadcast_to(latents[k], z.shape), labels)
                     for k in range(len(latents))], axis=0)
  centers = g.apply({"params": params}, labels, latents, method="label_w_avg")
  np.testing.assert_allclose(centers, by_hand, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      sampling.label_w_centers(g, params, np.asarray(labels), latents, chunk=2), by_hand,
      rtol=1e-5, atol=1e-6)

  stats = {"w_avg": jnp.zeros((g.w_dim,)), "pl_mean": jnp.zeros(())}
  images = sampling.generate(g, params, stats, z, labels=labels, truncation_psi=0.0,
                             truncation_center=centers)
  towards_global = sampling.generate(g, params, stats, z, labels=labels, truncation_psi=0.0)
  # (These random weights make the image depend on w only weakly: under 1e-3 across labels.)
  np.testing.assert_allclose(images[2], images[0], rtol=0, atol=1e-6)  # equal labels
  assert np.max(np.abs(images[1] - images[0])) > 2e-5
  assert np.max(np.abs(images[0] - towards_global[0])) > 2e-5
  ws = g.apply({"params": params, "batch_stats": stats}, z, labels, method="ws",
               truncation_psi=0.5, truncation_center=centers)[:, 0]
  np.testing.assert_allclose(ws, centers + 0.5 * (w_of(z, labels) - centers), rtol=1e-5,
                             atol=1e-6)
  with pytest.raises(ValueError, match=r"truncation_center must be \(batch, w_dim\)"):
    g.apply({"params": params, "batch_stats": stats}, z, labels, method="ws",
            truncation_psi=0.5, truncation_center=centers[:2])

  unconditional, _ = stylegan2.build_stylegan2(tiny_config(mapping_layers=1), (8, 8, 3))
  with pytest.raises(ValueError, match="label_w_avg needs a conditional generator"):
    unconditional.apply({"params": {}}, labels, latents, method="label_w_avg")
  sampling.check_truncation_center(g, "label")
  sampling.check_truncation_center(unconditional, "global")
  with pytest.raises(ValueError, match="is not a conditional generator with per-label"):
    sampling.check_truncation_center(unconditional, "label")
  with pytest.raises(ValueError, match="unknown truncation centre 'labels'; choose from: "
                                       "global, label"):
    sampling.check_truncation_center(g, "labels")
