"""R3GAN's networks: the block by hand (identity at the start, grouped convs, fix-up
initialisation), the resampling filters, the layout, conditioning, refused settings.
The recipe's smoke run is tests/test_configs.py's, its bf16 case test_precision's."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan_jax import models
from gan_jax.models import layers, r3gan, stylegan2

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def _config(**fields):
  base = dict(name="r3gan", g_width=8, d_width=8, max_channels=16, group_width=4,
              blocks_per_stage=1, latent_dim=16)
  return ml_collections.ConfigDict({**base, **fields})


def _init(module, *args):
  return jax.jit(functools.partial(module.init, train=False))(jax.random.PRNGKey(0), *args)


def test_a_block_widens_groups_narrows_and_starts_as_the_identity():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 32))
  block = r3gan.ResidualBlock(total_blocks=16, expansion=2, group_width=16)
  variables = block.init(jax.random.PRNGKey(1), x)
  params = variables["params"]
  assert params["expand"]["kernel"].shape == (1, 1, 32, 64)
  assert params["grouped"]["kernel"].shape == (3, 3, 16, 64)  # 4 groups of 16 channels
  assert params["narrow"]["kernel"].shape == (1, 1, 64, 32)
  assert params["act1"]["bias"].shape == params["act2"]["bias"].shape == (64,)
  assert all(set(params[name]) == {"kernel"} for name in ("expand", "grouped", "narrow"))
  np.testing.assert_array_equal(block.apply(variables, x), x)  # last conv at zero
  moved = jax.tree.map(lambda p: p, variables)
  moved["params"]["narrow"]["kernel"] = jnp.full((1, 1, 64, 32), 0.01)
  assert float(jnp.abs(block.apply(moved, x) - x).max()) > 1e-3
  # Fix-up: N(0, gain^2 / fan_in), gain sqrt(2 / 1.04) 16^(-1/4) for the first two convs.
  gain = np.sqrt(2 / 1.04) / 2
  big = r3gan.ResidualBlock(total_blocks=16, expansion=2, group_width=16).init(
      jax.random.PRNGKey(2), jnp.zeros((1, 4, 4, 256)))["params"]
  np.testing.assert_allclose(np.std(big["expand"]["kernel"]), gain / np.sqrt(256), rtol=0.02)
  np.testing.assert_allclose(np.std(big["grouped"]["kernel"]), gain / np.sqrt(9 * 16),
                             rtol=0.02)


def test_the_grouped_conv_forms_agree_to_second_derivatives():
  """taps (a matrix product per kernel tap) computes lax's grouped convolution, with the same
  gradients and the same gradient of an input-gradient penalty (R1's double backward)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 8))
  kernel = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 8, 12))
  np.testing.assert_allclose(layers.grouped_conv_taps(x, kernel, 1),  # one group: a conv
                             layers.grouped_conv_lax(x, kernel, 1), rtol=1e-5, atol=1e-4)
  groups = 4
  forms = {impl: layers.GroupedConv(12, 3, groups, impl=impl) for impl in ("lax", "taps")}
  variables = forms["lax"].init(jax.random.PRNGKey(1), x)
  assert variables["params"]["kernel"].shape == (3, 3, 8 // groups, 12)

  def penalty(params, x, impl):
    d = lambda x: jnp.tanh(forms[impl].apply({"params": params}, x)).sum()
    return jnp.sum(jax.grad(d)(x) ** 2) + d(x)

  out = {impl: forms[impl].apply(variables, x) for impl in forms}
  np.testing.assert_allclose(out["taps"], out["lax"], rtol=1e-5, atol=1e-5)
  grads = {impl: jax.grad(penalty, argnums=(0, 1))(variables["params"], x, impl)
           for impl in forms}
  for a, b in zip(jax.tree.leaves(grads["taps"]), jax.tree.leaves(grads["lax"])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert layers.resolve_grouped_conv("auto", "cpu") == "taps"
  assert layers.resolve_grouped_conv("auto", "gpu") == "lax"
  with pytest.raises(ValueError, match="unknown model.grouped_conv 'fft'; choose from: lax, taps"):
    layers.resolve_grouped_conv("fft")


def test_the_resampling_filters_are_bilinear_and_adjoint():
  """Down is [1, 3, 3, 1] / 8 with stride 2 (edges repeated), the transpose of the
  bilinear up-sample halved per axis: <up(x), y> = 4 <x, down(y)>."""
  ramp = jnp.arange(8.0)[None, :, None, None] * jnp.ones((1, 8, 8, 1))
  down = r3gan.filtered_downsample2x(ramp)[0, :, 0, 0]
  expected = [0.5 * 0 + 0.375 * 1 + 0.125 * 2,  # edge: x[-1] = x[0]
              0.125 * 1 + 0.375 * 2 + 0.375 * 3 + 0.125 * 4,
              0.125 * 3 + 0.375 * 4 + 0.375 * 5 + 0.125 * 6,
              0.125 * 5 + 0.375 * 6 + 0.5 * 7]  # edge: x[8] = x[7]
  np.testing.assert_allclose(down, expected, rtol=1e-6)
  np.testing.assert_allclose(r3gan.filtered_downsample2x(jnp.ones((1, 8, 8, 3))), 1.0,
                             rtol=1e-6)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 3))
  y = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 3))
  np.testing.assert_allclose(jnp.vdot(stylegan2.upsample2x(x), y),
                             4 * jnp.vdot(x, r3gan.filtered_downsample2x(y)), rtol=1e-5)


def test_layout_of_the_ffhq_64_preset():
  assert r3gan.stage_widths(64, 384, 768) == [768, 768, 768, 768, 384]
  assert r3gan.stage_widths(32, 32, 64) == [64, 64, 64, 32]
  g, d = models.build_models(_config(g_width=384, d_width=384, max_channels=768,
                                     group_width=16, blocks_per_stage=2, latent_dim=64),
                             (64, 64, 3))
  g_params = jax.eval_shape(g.init, jax.random.PRNGKey(0), jnp.zeros((2, 64)))["params"]
  d_params = jax.eval_shape(d.init, jax.random.PRNGKey(0), jnp.zeros((2, 64, 64, 3)))["params"]
  blocks = lambda p: sorted(k for k in p if k.startswith("ResidualBlock"))
  assert len(blocks(g_params)) == len(blocks(d_params)) == 10  # 5 stages of 2
  assert g_params["basis"].shape == (4, 4, 768)
  assert g_params["basis_scale"]["kernel"].shape == (64, 768)
  assert g_params["transition_4"]["kernel"].shape == (1, 1, 768, 384)  # before 64x64
  assert g_params["to_image"]["kernel"].shape == (1, 1, 384, 3)
  assert d_params["from_image"]["kernel"].shape == (1, 1, 3, 384)
  assert d_params["transition_0"]["kernel"].shape == (1, 1, 384, 768)  # after 64x64
  assert d_params["basis"]["kernel"].shape == (4, 4, 1, 768)  # depthwise 4x4
  assert d_params["logit"]["kernel"].shape == (768, 1)
  assert "batch_stats" not in jax.eval_shape(g.init, jax.random.PRNGKey(0), jnp.zeros((2, 64)))


def test_unbounded_images_logits_and_labels_that_reach_both():
  g, d = models.build_models(_config(), (8, 8, 3), label_classes=(3, 4))
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))
  labels = jnp.array([[0, 1], [1, 2], [2, 3], [0, 0]], jnp.int32)
  g_vars = _init(g, z, labels)
  images = g.apply(g_vars, z, labels)
  assert images.shape == (4, 8, 8, 3)
  # Every block starts as the identity, so G starts as basis -> upsample -> 1x1 convs.
  other = labels.at[:, 0].set((labels[:, 0] + 1) % 3)
  assert float(jnp.abs(g.apply(g_vars, z, other) - images).max()) > 1e-4
  d_vars = _init(d, images, labels)
  logits = d.apply(d_vars, images, labels)
  assert logits.shape == (4,)
  assert float(jnp.abs(d.apply(d_vars, images, other) - logits).max()) > 1e-6
  g_free, d_free = models.build_models(_config(), (8, 8, 3))
  wide = 10.0 * jax.random.normal(jax.random.PRNGKey(1), (4, 16))
  assert float(jnp.abs(g_free.apply(_init(g_free, wide), wide)).max()) > 1.0  # no tanh
  assert d_free.apply(_init(d_free, images), images).shape == (4,)


@pytest.mark.parametrize("fields, message", [
    ({"group_width": 3}, r"split 16 x expansion 2 = 32 channels \(g_width=8, max_channels=16\) "
                         "into groups of model.group_width=3"),
    ({"d_width": 0}, "model.d_width must be >= 1, got 0"),
    ({"blocks_per_stage": 0}, "model.blocks_per_stage must be >= 1, got 0"),
])
def test_refused_settings(fields, message):
  with pytest.raises(ValueError, match=message):
    models.build_models(_config(**fields), (8, 8, 3))
