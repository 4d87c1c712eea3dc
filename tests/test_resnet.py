"""The SNGAN ResNet family (gan_jax/models/resnet.py) and configs/sngan_resnet.py."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import sngan_resnet
from gan_jax import models, train
from gan_jax.models import resnet
from gan_jax.state import count_params, init_variables


def model_config(g_width=2, d_width=2, **extra):
  """A model config as build_resnet reads it."""
  return ml_collections.ConfigDict(dict(name="resnet", g_width=g_width, d_width=d_width, **extra))


@pytest.fixture
def registered(monkeypatch):
  """'resnet' in the model registry for this test (until gan_jax.models registers it)."""
  if "resnet" not in models.MODELS:
    entries = models.MODELS._entries  # pylint: disable=protected-access
    monkeypatch.setitem(entries, "resnet", resnet.build_resnet)


def conv(k, c_in, c_out):
  """Parameters of a k x k convolution with bias."""
  return k * k * c_in * c_out + c_out


def test_parameter_counts_at_16x16_width_2_by_hand():
  """16x16 (two doublings), width 2, z of 16, RGB: every kernel, bias and BatchNorm counted."""
  w, latent = 2, 16
  # G: Dense z -> 4x4x4w; up-blocks 4w -> 2w -> w (each: BN, conv3x3, BN, conv3x3, shortcut
  # conv1x1); BN(w) and conv3x3 w -> 3.
  up_block = lambda c_in, c_out: (2 * c_in + conv(3, c_in, c_out) + 2 * c_out
                                  + conv(3, c_out, c_out) + conv(1, c_in, c_out))
  g_expected = (latent * 16 * 4 * w + 16 * 4 * w + up_block(4 * w, 2 * w) + up_block(2 * w, w)
                + 2 * w + conv(3, w, 3))
  # D: optimised block 3 -> w (16 -> 8), down-block w -> 2w (8 -> 4), last block 2w -> 4w at
  # 4x4 (channels change: conv1x1 shortcut), Dense 4w -> 1.
  # The optimised block's first conv widens; the other blocks' first conv keeps c_in (SNGAN).
  optimised = conv(3, 3, w) + conv(3, w, w) + conv(1, 3, w)
  block = lambda c_in, c_out: conv(3, c_in, c_in) + conv(3, c_in, c_out) + conv(1, c_in, c_out)
  d_expected = optimised + block(w, 2 * w) + block(2 * w, 4 * w) + 4 * w + 1
  assert (g_expected, d_expected) == (2871, 721)  # the sums written out, for the record

  g, d = resnet.build_resnet(model_config(w, w), (16, 16, 3))
  g_params, g_stats = jax.eval_shape(
      lambda: init_variables(g, jax.random.PRNGKey(0), jnp.zeros((1, latent))))
  d_params, d_stats = jax.eval_shape(
      lambda: init_variables(d, jax.random.PRNGKey(1), jnp.zeros((1, 16, 16, 3))))
  assert count_params(g_params) == g_expected
  assert count_params(d_params) == d_expected
  # 5 BatchNorms in G (2 per up-block + the last); D's only state is spectral norm's.
  assert count_params(g_stats) == 2 * (4 * w + 2 * w + 2 * w + w + w)  # running mean and var
  assert len(jax.tree.leaves(d_stats)) == 2 * 10  # (u, sigma) for 9 convs and the Dense


def test_identity_shortcut_when_the_last_block_keeps_its_width():
  """At 128x128 D's last block maps 16w -> 16w at 4x4: no shortcut conv there."""
  w = 1
  _, d = resnet.build_resnet(model_config(w, w), (128, 128, 3))
  params, _ = jax.eval_shape(
      lambda: init_variables(d, jax.random.PRNGKey(1), jnp.zeros((1, 128, 128, 3))))
  last = params["DownBlock_4"]
  assert set(last) == {"Conv_0", "Conv_1"}
  assert last["Conv_0"]["kernel"].shape == last["Conv_1"]["kernel"].shape == (3, 3, 16 * w, 16 * w)
  assert resnet.generator_widths(128, w) == [16, 16, 8, 4, 2, 1]
  assert resnet.discriminator_widths(128, w) == [1, 2, 4, 8, 16, 16]


@pytest.mark.parametrize("size", [16, 32])
def test_shapes_and_dtypes(size):
  g, d = resnet.build_resnet(model_config(2, 2), (size, size, 3))

  def forward():
    z = jax.random.normal(jax.random.PRNGKey(0), (3, 7))
    images = g.apply(g.init(jax.random.PRNGKey(1), z, train=False), z, train=False)
    return images, d.apply(d.init(jax.random.PRNGKey(2), images, train=False), images, train=False)

  images, logits = jax.eval_shape(forward)
  assert images.shape == (3, size, size, 3) and images.dtype == jnp.float32
  assert logits.shape == (3,) and logits.dtype == jnp.float32


def test_generator_output_is_in_tanh_range():
  g, _ = resnet.build_resnet(model_config(2, 2), (8, 8, 1))
  z = 30.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 5))  # large z: saturates tanh
  images = jax.jit(lambda z: g.apply(g.init(jax.random.PRNGKey(1), z, train=False), z,
                                     train=False))(z)
  assert images.shape == (8, 8, 8, 1)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  assert float(jnp.std(images)) > 0.0


def test_discriminator_is_spectrally_normalised_when_asked():
  """After many train-mode calls (one power iteration each), every kernel / sigma has
  largest singular value ~1; without spectral norm D keeps no state."""
  _, d = resnet.build_resnet(model_config(2, 2, d_spectral_norm=True), (8, 8, 3))
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3), minval=-1, maxval=1)
  variables = jax.jit(lambda x: d.init(jax.random.PRNGKey(1), x, train=False))(x)
  params = variables["params"]

  @jax.jit
  def iterate(stats):
    def body(_, stats):
      _, mutated = d.apply({"params": params, "batch_stats": stats}, x, train=True,
                           mutable=["batch_stats"])
      return mutated["batch_stats"]
    return jax.lax.fori_loop(0, 100, body, stats)

  stats = iterate(variables["batch_stats"])
  flat_params = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(params)}
  sigmas = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(stats)
            if jax.tree_util.keystr(p).endswith("/kernel/sigma']")}
  assert len(sigmas) == 7  # 3 convs in each of the 2 blocks (8 -> 4, then 4x4) + the Dense
  for path, sigma in sigmas.items():
    # "['DownBlock_0']['SpectralNorm_1']['Conv_1/kernel/sigma']" -> that block's Conv_1 kernel.
    parts = path.strip("[]'").split("']['")
    layer = parts[-1].split("/")[0]
    kernel = flat_params["".join(f"['{p}']" for p in parts[:-2] + [layer, "kernel"])]
    matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    top = np.linalg.svd(matrix / float(sigma), compute_uv=False)[0]
    assert abs(top - 1.0) < 0.02, (path, top)

  assert bool(jnp.isfinite(d.apply({"params": params, "batch_stats": stats}, x, train=False)).all())
  _, plain = resnet.build_resnet(model_config(2, 2, d_spectral_norm=False), (8, 8, 3))
  assert "batch_stats" not in jax.eval_shape(
      lambda: plain.init(jax.random.PRNGKey(1), x, train=False))


def test_generator_spectral_norm_option():
  g, _ = resnet.build_resnet(model_config(2, 2, g_spectral_norm=True), (16, 16, 3))
  stats = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)),
                                        train=False))["batch_stats"]
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(stats)]
  assert sum(p.endswith("/kernel/sigma']") for p in paths) == 1 + 2 * 3 + 1  # Dense, blocks, out


@pytest.mark.parametrize("shape", [(0, 0, 3), (4, 4, 3), (12, 12, 3), (48, 48, 3), (100, 100, 3)])
def test_bad_image_sizes_are_refused(shape):
  with pytest.raises(ValueError, match="power of two >= 8"):
    resnet.build_resnet(model_config(), shape)


def test_non_square_or_flat_data_is_refused():
  with pytest.raises(ValueError, match="needs square images"):
    resnet.build_resnet(model_config(), (16, 32, 3))
  with pytest.raises(ValueError, match="needs square images"):
    resnet.build_resnet(model_config(), (2,))
  _, d = resnet.build_resnet(model_config(), (16, 16, 3))
  with pytest.raises(ValueError, match="built for 16x16"):
    d.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False)


def test_config_holds_the_sngan_recipe(registered):
  for preset in ("", "smoke"):
    config = sngan_resnet.get_config(preset)
    train.validate_config(config)
    assert config.model.name == "resnet"
    assert config.loss.name == "hinge"
    assert config.optim.name == "adam"
    assert config.optim.g_lr == config.optim.d_lr == 2e-4
    assert tuple(config.optim.g_betas) == tuple(config.optim.d_betas) == (0.0, 0.9)
    assert config.train.d_steps == (5 if not preset else 2)  # smoke: fewer unrolled D steps
    assert config.model.d_spectral_norm and not config.model.g_spectral_norm
    assert config.constraint.d == "" and config.constraint.g == ""
  smoke = sngan_resnet.get_config("smoke")
  assert (smoke.data.image_size, smoke.model.g_width, smoke.model.d_width) == (8, 8, 8)
  with pytest.raises(ValueError, match="unknown preset"):
    sngan_resnet.get_config("huge")
