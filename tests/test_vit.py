"""The vision-transformer discriminator (gan_jax/models/vit.py) and swapping a family's D
(configs/vit_d.py's smoke run, a DCGAN G against it with R1: tests/test_configs.py)."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcgan
from conftest import set_fields
from gan_jax import models
from gan_jax.models import vit

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def _vit(**fields):
  options = dict(image_size=16, patch_size=4, width=16, depth=2, heads=2)
  options.update(fields)
  return vit.Discriminator(**options)


def _patches_permuted(images: jax.Array, order: np.ndarray, patch: int) -> jax.Array:
  """`images` with their patch x patch patches (row-major) rearranged: patch i <- order[i]."""
  batch, size, _, channels = images.shape
  grid = size // patch
  tiles = images.reshape(batch, grid, patch, grid, patch, channels).transpose(0, 1, 3, 2, 4, 5)
  tiles = tiles.reshape(batch, grid * grid, patch, patch, channels)[:, order]
  return tiles.reshape(batch, grid, grid, patch, patch, channels).transpose(
      0, 1, 3, 2, 4, 5).reshape(images.shape)


def test_a_transformer_over_patches_sees_their_positions_only_through_its_embedding():
  """One logit per image; rearranging the patches leaves the logit unchanged once the
  position embedding is zero (attention and the class-token readout ignore token order)
  and changes it with the learned embedding; changing one pixel changes the logit."""
  d = _vit()
  images = jax.random.uniform(jax.random.key(0), (3, 16, 16, 3), minval=-1, maxval=1)
  variables = d.init(jax.random.key(1), images, train=False)
  apply = jax.jit(lambda v, x: d.apply(v, x, train=False))
  logits = apply(variables, images)
  assert logits.shape == (3,) and logits.dtype == jnp.float32
  order = np.random.default_rng(0).permutation(16)
  permuted = _patches_permuted(images, order, 4)
  np.testing.assert_array_equal(_patches_permuted(images, np.arange(16), 4), images)
  position = variables["params"]["position_embedding"]
  variables["params"]["position_embedding"] = position + 0.5  # far from 0
  assert float(jnp.max(jnp.abs(apply(variables, permuted) - apply(variables, images)))) > 1e-4
  variables["params"]["position_embedding"] = jnp.zeros_like(position)
  np.testing.assert_allclose(apply(variables, permuted), apply(variables, images),
                             rtol=1e-5, atol=1e-6)
  moved = apply(variables, images.at[0, 5, 7, 1].add(0.5))
  assert float(jnp.abs(moved[0] - apply(variables, images)[0])) > 1e-6
  np.testing.assert_array_equal(moved[1:], apply(variables, images)[1:])


def test_spectral_norm_tracks_every_linear_map_and_bfloat16_computes_in_bfloat16():
  """With spectral_norm every linear map (patch embedding, 4 per block, head) keeps a
  power-iteration state in batch_stats whose sigma converges to its kernel's top singular
  value; bfloat16 inputs give a bfloat16 logit."""
  d = _vit(spectral_norm=True)
  images = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3), minval=-1, maxval=1)
  variables = d.init(jax.random.key(1), images, train=False)
  stats = jax.tree_util.tree_leaves_with_path(variables["batch_stats"])
  assert len(stats) == 2 * (1 + 2 * 4 + 1)  # patch embedding, 4 maps per block, head; u and sigma
  advance = jax.jit(lambda v: d.apply(v, images, train=True, mutable=["batch_stats"])[1])
  for _ in range(30):  # power iteration converges: sigma -> the kernels' top singular value
    variables = {**variables, **advance(variables)}
  kernel = np.asarray(variables["params"]["block_0"]["mlp_in"]["kernel"])
  sigma, = [float(value) for layer in variables["batch_stats"]["block_0"].values()
            for name, value in layer.items() if name == "mlp_in/kernel/sigma"]
  np.testing.assert_allclose(sigma, np.linalg.svd(kernel, compute_uv=False)[0], rtol=1e-3)
  bf16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x,
                      variables["params"])
  out = d.apply({**variables, "params": bf16}, images.astype(jnp.bfloat16), train=False)
  assert out.dtype == jnp.bfloat16


def _config(**fields):
  """configs/dcgan.py:smoke with model.discriminator='vit' and `fields` of config.model set
  (nested with dots: 'vit.heads')."""
  config = dcgan.get_config("smoke")
  config.model.discriminator = "vit"
  return set_fields(config, {f"model.{field}": value for field, value in fields.items()})


@pytest.mark.parametrize("recipe", ["dcgan", "sngan_resnet", "biggan", "stylegan2"])
def test_model_discriminator_swaps_the_family_d_and_refuses_what_it_cannot_pair(recipe):
  config = importlib.import_module(f"configs.{recipe}").get_config("smoke")
  shape = (config.data.image_size, config.data.image_size, 3)
  family_generator, _ = models.build_models(config.model, shape)
  config.model.discriminator = "vit"
  generator, discriminator = models.build_models(config.model, shape)
  assert isinstance(discriminator, vit.Discriminator) and discriminator.width == 16
  assert generator == family_generator  # the family's own G, unchanged
  if recipe != "dcgan":
    return
  with pytest.raises(ValueError, match="unknown discriminator 'vits'; choose from: vit"):
    models.build_models(_config(discriminator="vits").model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.discriminator='vit' replaces the discriminator of "
                                       "dcgan, resnet, biggan, stylegan2; model.name='progan'"):
    models.build_models(_config(name="progan").model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.discriminator='vit' is unconditional"):
    models.build_models(_config().model, (16, 16, 3), label_classes=(3,))
  with pytest.raises(ValueError, match="model.vit.patch_size must divide the image size 16, "
                                       "got 5"):
    models.build_models(_config(**{"vit.patch_size": 5}).model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.vit.heads must divide model.vit.width 16, got 3"):
    models.build_models(_config(**{"vit.heads": 3}).model, (16, 16, 3))
  with pytest.raises(ValueError, match="ViT needs square images"):
    models.build_models(_config().model, (16, 8, 3))
