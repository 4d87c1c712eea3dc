"""DCGAN models, latent distributions and the model registry."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan_jax import latents, models
from gan_jax.models import dcgan
from gan_jax.state import count_params, init_variables


def model_config(g_width=64, d_width=64, name="dcgan"):
  return ml_collections.ConfigDict(dict(name=name, g_width=g_width, d_width=d_width))


def test_dcgan64_matches_the_reference_parameter_counts():
  """The PyTorch DCGAN-64 (nz=100, ngf=ndf=64) has 3,576,704 G and 2,765,568 D parameters."""
  g, d = models.build_models(model_config(), (64, 64, 3))
  g_params, g_stats = jax.eval_shape(
      lambda: init_variables(g, jax.random.PRNGKey(0), jnp.zeros((1, 100))))
  d_params, _ = jax.eval_shape(
      lambda: init_variables(d, jax.random.PRNGKey(1), jnp.zeros((1, 64, 64, 3))))
  assert count_params(g_params) == 3_576_704
  assert count_params(d_params) == 2_765_568
  assert set(g_stats) == {"BatchNorm_0", "BatchNorm_1", "BatchNorm_2", "BatchNorm_3"}


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128])
def test_shapes_at_every_size(size):
  g, d = models.build_models(model_config(4, 4), (size, size, 3))

  def forward():
    z = jax.random.normal(jax.random.PRNGKey(0), (3, 7))
    images = g.apply(g.init(jax.random.PRNGKey(1), z, train=False), z, train=False)
    return images, d.apply(d.init(jax.random.PRNGKey(2), images, train=False), images, train=False)

  images, logits = jax.eval_shape(forward)
  assert images.shape == (3, size, size, 3)
  assert logits.shape == (3,)


def test_generator_output_is_in_tanh_range():
  g = dcgan.Generator(image_size=16, width=4)
  z = 30.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 5))  # large z: saturates tanh
  images = jax.jit(lambda z: g.apply(g.init(jax.random.PRNGKey(1), z, train=False), z,
                                     train=False))(z)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  assert float(jnp.std(images)) > 0.0


@pytest.mark.parametrize("size", [0, 4, 12, 48, 100])
def test_bad_image_sizes_are_refused(size):
  with pytest.raises(ValueError, match="power of two"):
    models.build_models(model_config(4, 4), (size, size, 3))


def test_dcgan_refuses_non_square_or_flat_data():
  with pytest.raises(ValueError, match="DCGAN needs square images"):
    models.build_models(model_config(4, 4), (16, 32, 3))
  with pytest.raises(ValueError, match="DCGAN needs square images"):
    models.build_models(model_config(4, 4), (2,))


def test_discriminator_refuses_the_wrong_image_size():
  d = dcgan.Discriminator(image_size=16, width=4)
  with pytest.raises(ValueError, match="built for 16x16"):
    d.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False)


def test_train_mode_batchnorm_updates_running_statistics():
  g = dcgan.Generator(image_size=8, width=4)
  z = jax.random.normal(jax.random.PRNGKey(0), (16, 5))
  variables = g.init(jax.random.PRNGKey(1), z, train=False)
  _, mutated = g.apply(variables, z, train=True, mutable=["batch_stats"])
  before = jax.tree.leaves(variables["batch_stats"])
  after = jax.tree.leaves(mutated["batch_stats"])
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_unknown_model_lists_valid_names():
  with pytest.raises(ValueError, match=r"unknown model 'dcgna'; choose from: began, biggan, "
                     r"biggan_deep, dcgan, mlp"):
    models.build_models(model_config(name="dcgna"), (64, 64, 3))


def test_latent_distributions():
  key = jax.random.PRNGKey(0)
  gauss = latents.get_latent_sampler("gaussian")(key, (4096, 8))
  uni = latents.get_latent_sampler("uniform")(key, (4096, 8))
  assert gauss.shape == uni.shape == (4096, 8)
  np.testing.assert_allclose(jnp.mean(gauss), 0.0, atol=0.03)
  np.testing.assert_allclose(jnp.std(gauss), 1.0, atol=0.03)
  assert float(uni.min()) >= -1.0 and float(uni.max()) <= 1.0
  np.testing.assert_allclose(jnp.var(uni), 1.0 / 3.0, atol=0.02)  # Var U(-1, 1) = 1/3
  with pytest.raises(ValueError, match="choose from: gaussian, uniform"):
    latents.get_latent_sampler("normal")


def assert_same_layer(ours, reference, x):
  """`ours` has `reference`'s parameter shapes and, on its parameters, the same outputs and
  the same gradients with respect to the parameters and to x."""
  variables = reference.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
      jnp.shape, variables)
  np.testing.assert_allclose(ours.apply(variables, x), reference.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda module: lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))
  for ours_grad, reference_grad in zip(
      jax.tree.leaves(jax.grad(loss(ours), argnums=(0, 1))(variables, x)),
      jax.tree.leaves(jax.grad(loss(reference), argnums=(0, 1))(variables, x))):
    np.testing.assert_allclose(ours_grad, reference_grad, rtol=1e-4, atol=1e-4)
  return variables


@pytest.mark.parametrize("impl", ["phases", "stacked", "stacked_gemm", "transpose"])
def test_upconv_is_the_4x4_stride_2_transposed_convolution(impl):
  """Same kernel, outputs and gradients as nn.ConvTranspose(SAME), every way."""
  from gan_jax.models.layers import UpConv  # pylint: disable=g-import-not-at-top
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 7, 6))  # non-square, odd sizes
  assert_same_layer(UpConv(4, impl=impl),
                    nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding="SAME", use_bias=False), x)


def test_gemm_kernel_gradient_is_the_convolutions():
  """valid_conv_gemm_grad: the VALID convolution, with autodiff's gradients (any kernel size,
  non-square inputs), in float32 and in bfloat16 (gradients in the inputs' dtypes)."""
  from gan_jax.models.layers import valid_conv_gemm_grad  # pylint: disable=g-import-not-at-top
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(keys[0], (3, 6, 9, 5))
  kernel = jax.random.normal(keys[1], (3, 2, 5, 4))
  dy = jax.random.normal(keys[2], (3, 4, 8, 4))
  reference = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  for dtype, tol in ((jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)):
    args = (x.astype(dtype), kernel.astype(dtype))
    ours, vjp = jax.vjp(valid_conv_gemm_grad, *args)
    theirs, reference_vjp = jax.vjp(reference, *args)
    np.testing.assert_array_equal(ours, theirs)
    for a, b in zip(vjp(dy.astype(dtype)), reference_vjp(dy.astype(dtype))):
      assert a.dtype == b.dtype == dtype
      np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("impl", ["strided", "s2d"])
def test_downconv_is_the_4x4_stride_2_convolution(impl):
  """Same kernel, outputs and gradients as nn.Conv((4, 4), 2, padding 1), either way."""
  from gan_jax.models.layers import DownConv  # pylint: disable=g-import-not-at-top
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 10, 5))  # non-square
  ours = DownConv(4, impl=impl)
  variables = assert_same_layer(
      ours, nn.Conv(4, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=False), x)
  if impl == "s2d":
    with pytest.raises(ValueError, match="'s2d' needs even height and width, got 5x10"):
      ours.apply(variables, x[:, :5])


def test_discriminator_downconv_forms_share_parameters_and_outputs():
  """model.downconv changes how D computes, not its parameter tree or its logits."""
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 16, 16, 3))
  strided = dcgan.Discriminator(image_size=16, width=4)
  variables = strided.init(jax.random.PRNGKey(1), x, train=False)
  s2d = dcgan.Discriminator(image_size=16, width=4, downconv="s2d")
  assert jax.tree.map(jnp.shape, s2d.init(jax.random.PRNGKey(1), x, train=False)) == jax.tree.map(
      jnp.shape, variables)
  assert set(variables["params"]) >= {"Conv_0", "Conv_1", "Conv_2"}
  np.testing.assert_allclose(s2d.apply(variables, x, train=False),
                             strided.apply(variables, x, train=False), rtol=1e-5, atol=1e-5)


def test_downconv_auto_is_s2d_on_gpu_only_and_unknown_forms_are_named():
  assert models.resolve_downconv("auto", backend="gpu") == "s2d"
  assert models.resolve_downconv("auto", backend="cpu") == "strided"
  assert models.resolve_downconv("auto", backend="tpu") == "strided"
  assert models.resolve_downconv("s2d", backend="cpu") == "s2d"
  from configs import dcgan as dcgan_config  # pylint: disable=g-import-not-at-top
  config = dcgan_config.get_config("smoke").model
  config.downconv = "pixelshuffle"
  with pytest.raises(ValueError, match="unknown model.downconv 'pixelshuffle'; choose from: "
                     "strided, s2d, auto"):
    models.build_models(config, (16, 16, 3))


def test_upconv_impls_are_listed_and_checked():
  from gan_jax.models.layers import UPCONV_IMPLS, UpConv  # pylint: disable=g-import-not-at-top
  assert UPCONV_IMPLS == ("phases", "stacked", "stacked_gemm", "transpose")
  with pytest.raises(ValueError, match="unknown UpConv impl 'fast'; choose from: phases, stacked"):
    UpConv(4, impl="fast").init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))


def test_spectral_norm_layers_normalise_every_conv():
  d = dcgan.Discriminator(image_size=16, width=4, norm="none", spectral_norm=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 16, 16, 3))
  variables = d.init(jax.random.PRNGKey(1), x, train=False)
  for _ in range(30):  # power iteration advances in train mode
    _, mutated = d.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": mutated["batch_stats"]}
  stats = variables["batch_stats"]
  assert len(stats) == 3  # 16x16: three convs, each wrapped
  for name, conv in variables["params"].items():
    wrapper = stats[f"SpectralNorm_{name.split('_')[1]}"]
    sigma = wrapper[f"{name}/kernel/sigma"]
    exact = np.linalg.svd(np.asarray(conv["kernel"]).reshape(-1, conv["kernel"].shape[-1]),
                          compute_uv=False)[0]
    np.testing.assert_allclose(sigma, exact, rtol=1e-3)
  # W / sigma(W) is scale-free: tripling every kernel leaves D unchanged (unnormalised
  # it would multiply the logits by 3**3).
  scaled = {"params": jax.tree.map(lambda k: 3.0 * k, variables["params"]),
            "batch_stats": variables["batch_stats"]}
  np.testing.assert_allclose(d.apply(scaled, x, train=False), d.apply(variables, x, train=False),
                             rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, shape", [("dcgan", (16, 16, 3)), ("mlp", (2,))])
def test_spectrally_normalised_generator_ignores_the_scale_of_its_kernels(name, shape):
  """W / sigma(W) in every G layer: scaling all kernels by 10 leaves the samples unchanged
  (with the option off, the dcgan output layer and every mlp layer change them)."""
  def samples(spectral_norm, scale):
    config = ml_collections.ConfigDict(dict(name=name, g_width=8, d_width=8,
                                            g_spectral_norm=spectral_norm))
    g, _ = models.build_models(config, shape)
    z = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    variables = g.init(jax.random.PRNGKey(1), z, train=False)
    params = jax.tree_util.tree_map_with_path(
        lambda path, w: w * scale if "kernel" in jax.tree_util.keystr(path) else w,
        variables["params"])
    out, _ = g.apply({**variables, "params": params}, z, train=True, mutable=["batch_stats"])
    return np.asarray(out)

  np.testing.assert_allclose(samples(True, 10.0), samples(True, 1.0), rtol=1e-4, atol=1e-5)
  assert not np.allclose(samples(False, 10.0), samples(False, 1.0), rtol=1e-3, atol=1e-3)


def test_discriminators_name_the_image_size_they_were_built_for():
  from gan_jax.models import layers  # pylint: disable=g-import-not-at-top
  layers.check_image_size(jnp.zeros((1, 16, 16, 3)), 16)
  with pytest.raises(ValueError, match="built for 16x16 images, got 16x8"):
    layers.check_image_size(jnp.zeros((1, 16, 8, 3)), 16)
  d = dcgan.Discriminator(image_size=16, width=4)
  with pytest.raises(ValueError, match="built for 16x16 images, got 32x32"):
    d.init(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)), train=False)
