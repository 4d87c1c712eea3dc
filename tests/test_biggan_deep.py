"""BigGAN-deep: the bottleneck blocks and their skips by hand, the networks' layout, orthogonal
starts, refused settings, and the recipe's conditional smoke run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import models, train
from gan_jax.models import biggan_deep, layers
from test_biggan import _init, _is_orthogonal, _model_config
from test_train import read_metrics

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def _deep_config(**fields):
  return _model_config(**{"name": "biggan_deep", "hierarchical_z": False, **fields})


def _with(variables, module: str, value: float):
  """`variables` with every parameter of submodule `module` set to `value`."""
  params = dict(variables["params"])
  params[module] = jax.tree.map(lambda p: jnp.full_like(p, value), params[module])
  return {**variables, "params": params}


# ---- the bottleneck blocks ------------------------------------------------------------

def test_g_block_narrows_to_a_quarter_and_skips_with_the_first_channels_upsampled():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 8))
  y = jax.random.normal(jax.random.PRNGKey(1), (2, 5))
  block = biggan_deep.DeepGBlock(4, upsample=True, spectral_norm=False)
  variables = _init(block, x, y)
  params = variables["params"]
  assert [params[f"Conv_{i}"]["kernel"].shape for i in range(4)] == [
      (1, 1, 8, 2), (3, 3, 2, 2), (3, 3, 2, 2), (1, 1, 2, 4)]  # inner width 8 / 4
  assert sorted(k for k in params if "BatchNorm" in k) == [
      f"LinearConditionalBatchNorm_{i}" for i in range(4)]
  assert params["LinearConditionalBatchNorm_0"]["gain"]["kernel"].shape == (5, 8)
  out = block.apply(variables, x, y, train=False)
  assert out.shape == (2, 8, 8, 4)
  # Without the residual branch's last conv, the block is its skip: no conv, the input's
  # first 4 channels, each pixel repeated 2x2.
  skip = block.apply(_with(variables, "Conv_3", 0.0), x, y, train=False)
  np.testing.assert_array_equal(skip, layers.upsample_nearest(x[..., :4]))
  assert float(jnp.abs(out - skip).max()) > 1e-3
  same = biggan_deep.DeepGBlock(8, upsample=False, spectral_norm=False)
  same_vars = _init(same, x, y)
  np.testing.assert_array_equal(same.apply(_with(same_vars, "Conv_3", 0.0), x, y, train=False), x)
  with pytest.raises(ValueError, match="keeps or narrows its channels: 8 -> 16"):
    _init(biggan_deep.DeepGBlock(16, upsample=False), x, y)


def test_d_block_pools_and_widens_its_skip_with_a_conv_s_extra_channels():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 8))
  block = biggan_deep.DeepDBlock(12, downsample=True, spectral_norm=False)
  variables = _init(block, x)
  params = variables["params"]
  assert [params[f"Conv_{i}"]["kernel"].shape for i in range(5)] == [
      (1, 1, 8, 3), (3, 3, 3, 3), (3, 3, 3, 3), (1, 1, 3, 12), (1, 1, 8, 4)]  # 12 / 4; 12 - 8
  out = block.apply(variables, x, train=False)
  assert out.shape == (2, 4, 4, 12)
  # The skip by hand: 2x2 means of x, then those 8 channels and 4 more from a 1x1 conv.
  pooled = np.asarray(x).reshape(2, 4, 2, 4, 2, 8).mean(axis=(2, 4))
  kernel, bias = (np.asarray(params["Conv_4"][k]) for k in ("kernel", "bias"))
  extra = pooled @ kernel[0, 0] + bias
  skip = block.apply(_with(variables, "Conv_3", 0.0), x, train=False)
  np.testing.assert_allclose(skip, np.concatenate([pooled, extra], axis=-1), rtol=1e-5,
                             atol=1e-6)
  assert float(jnp.abs(out - skip).max()) > 1e-3
  same = biggan_deep.DeepDBlock(8, downsample=False, spectral_norm=False)
  same_vars = _init(same, x)
  assert "Conv_4" not in same_vars["params"]  # no conv on an unchanged width
  np.testing.assert_array_equal(same.apply(_with(same_vars, "Conv_3", 0.0), x, train=False), x)
  with pytest.raises(ValueError, match="keeps or widens its channels: 8 -> 4"):
    _init(biggan_deep.DeepDBlock(4, downsample=True), x)
  with pytest.raises(ValueError, match="narrow 2 channels to a quarter"):
    biggan_deep.bottleneck_width(2)


# ---- the networks -----------------------------------------------------------------------

LABELS = jnp.array([[0, 1], [1, 2], [2, 3], [0, 0]], jnp.int32)


def _shapes(module, *args):
  """The parameters' shapes of `module` (traced, not computed)."""
  return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args, train=False))["params"]


@pytest.fixture(scope="module")
def conditional_pair():
  """(G, D, G variables, D variables) of a conditional BigGAN-deep on 16x16 images (width 8,
  attention at 8x8, projection and AC-GAN heads; no spectral norm, which halves the
  initialisation's compile time and changes no kernel's start)."""
  g, d = models.build_models(
      _deep_config(d_cond="projection+acgan", g_spectral_norm=False, d_spectral_norm=False),
      (16, 16, 3), (3, 4))
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 18))
  g_vars = _init(g, z, LABELS)
  return g, d, g_vars, _init(d, jnp.zeros((4, 16, 16, 3)), LABELS)


def test_two_blocks_a_level_and_all_of_z_with_the_embeddings_in_every_g_block():
  g, d = models.build_models(_deep_config(), (16, 16, 3), (3, 4))
  assert isinstance(g, biggan_deep.Generator) and isinstance(d, biggan_deep.Discriminator)
  params = _shapes(g, jnp.zeros((4, 18)), LABELS)
  conditioning = 18 + 2 * 4  # all of z and the 2 heads' shared embeddings of 4
  assert params["Dense_0"]["kernel"].shape == (conditioning, 4 * 4 * 32)
  # 16x16 at width 8: 32 channels at 4x4; per level a block keeping them, then an up-block.
  outputs = [params[f"DeepGBlock_{i}"]["Conv_3"]["kernel"].shape[-1] for i in range(4)]
  assert outputs == [32, 16, 16, 8] and "DeepGBlock_4" not in params
  for i in range(4):
    for j in range(4):
      norm = params[f"DeepGBlock_{i}"][f"LinearConditionalBatchNorm_{j}"]
      assert norm["gain"]["kernel"].shape[0] == conditioning
  d_params = _shapes(d, jnp.zeros((4, 16, 16, 3)), LABELS)
  assert d_params["Conv_0"]["kernel"].shape == (3, 3, 3, 8)  # the stem at full resolution
  widths = [d_params[f"DeepDBlock_{i}"]["Conv_3"]["kernel"].shape[-1] for i in range(4)]
  assert widths == [16, 16, 32, 32] and "DeepDBlock_4" not in d_params
  assert "SelfAttention_0" in params and "SelfAttention_0" in d_params  # both at 8x8
  unconditional, _ = models.build_models(_deep_config(latent_dim=10, attention=0),
                                         (16, 16, 3))
  plain = _shapes(unconditional, jnp.zeros((2, 10)))
  assert plain["DeepGBlock_0"]["LinearConditionalBatchNorm_0"]["gain"]["kernel"].shape[0] == 10
  assert "SelfAttention_0" not in plain and "shared_embedding" not in plain


def test_every_coordinate_of_z_and_the_labels_reach_the_image_and_d(conditional_pair):
  g, d, g_vars, d_vars = conditional_pair
  z = jax.random.normal(jax.random.PRNGKey(1), (4, 18))
  images = jax.jit(lambda z, labels: g.apply(g_vars, z, labels, train=False))
  x = images(z, LABELS)
  assert x.shape == (4, 16, 16, 3) and float(jnp.abs(x).max()) <= 1
  assert float(jnp.abs(x - images(z, LABELS[::-1])).max()) > 1e-4
  grad_z = np.asarray(jax.jit(jax.grad(lambda z: images(z, LABELS).sum()))(z))
  assert np.all(np.abs(grad_z).max(axis=0) > 1e-7)
  logits = jax.jit(lambda labels: d.apply(d_vars, x, labels, train=False))
  assert logits(LABELS).shape == (4,)
  assert float(jnp.abs(logits(LABELS) - logits((LABELS + 1) % 3)).max()) > 0


def test_every_kernel_and_embedding_starts_orthogonal(conditional_pair):
  _, _, g_vars, d_vars = conditional_pair
  checked = {}
  for name, variables in (("G", g_vars), ("D", d_vars)):
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]):
      if path[-1].key in ("kernel", "embedding"):
        checked[name + jax.tree_util.keystr(path)] = _is_orthogonal(leaf)
  assert all(checked.values()), [k for k, ok in checked.items() if not ok]
  for part in ("G['DeepGBlock_3']", "G['shared_embedding']", "D['DeepDBlock_0']['Conv_4']",
               "D['conditional']['projection']", "D['conditional']['aux_head_0']"):
    assert any(k.startswith(part) for k in checked), (part, sorted(checked))


@pytest.mark.parametrize("fields, message", [
    (dict(hierarchical_z=True), "BigGAN-deep feeds all of z .* set model.hierarchical_z=False"),
    (dict(d_init="resnet"), "model.d_init='resnet': .* set model.d_init='orthogonal'"),
    (dict(attention=12), "model.attention=12: choose 0 .* 8, 16"),
    (dict(g_width=1), "model.g_width=1, d_width=8: .* give widths >= 2"),
])
def test_bad_biggan_deep_settings_are_refused(fields, message):
  with pytest.raises(ValueError, match=message):
    models.build_models(_deep_config(**fields), (16, 16, 3))


def test_the_recipe_trains_conditionally(tmp_path, tagged_faces, cache_dir):
  """configs/biggan_deep.py's smoke preset, on labelled faces: 2 iterations with finite
  losses. (Without G's spectral norm, which halves the compile time; the networks above
  have it. Conditional evaluation is family-independent: tests/test_conditional.py.)"""
  from configs import biggan_deep as recipe  # pylint: disable=g-import-not-at-top
  config = recipe.get_config("smoke")
  config.data.source = tagged_faces
  config.data.cache_dir = cache_dir
  config.model.g_spectral_norm = False
  config.train.num_steps = 2
  state = train.train_and_evaluate(config, str(tmp_path))
  rows = read_metrics(tmp_path)
  assert [r["step"] for r in rows] == [1, 2]
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  assert "DeepGBlock_1" in state.ema_params and "DeepDBlock_1" in state.d_params
