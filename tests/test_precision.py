"""Mixed precision: bfloat16 compute with float32 parameters, optimizer state and statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcgan, toy_ring
from conftest import set_fields
from gan_jax import lab, precision, train

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)

_FAMILIES = {
    # SN layers in D: SpectralNorm must hand back a bf16 kernel (the ResNet family's D is
    # made of the same flax layers, so dcgan stands for both here).
    "dcgan": {"data.image_size": 8, "model.d_spectral_norm": True, "model.d_norm": "none"},
    # Self-attention, conditional BatchNorm from z and SN layers in G, in BigGAN-deep's
    # bottleneck blocks: it stands for BigGAN too, whose blocks are the same flax layers
    # (as dcgan stands for the ResNet family).
    "biggan_deep": {"data.image_size": 8, "model.latent_dim": 16, "model.attention": 8},
    # With random noise and style mixing (path length in bf16 would double this test's
    # compile time; tests/test_stylegan2.py trains with it in float32).
    "stylegan2": {"model.mapping_layers": 2, "data.image_size": 8, "model.noise": "random",
                  "model.style_mixing": 0.9},
    # R3GAN: grouped convolutions, a learned basis and biases outside flax's layers.
    "r3gan": {"data.image_size": 8, "model.max_channels": 16, "model.group_width": 4,
              "model.blocks_per_stage": 1},
    # DCGAN's G against the transformer D (models/vit.py): its attention and MLP are matrix
    # products (dot_general), checked too (SN's float32 power iteration is dcgan's case).
    "vit": {"model.name": "dcgan", "model.discriminator": "vit", "data.image_size": 8},
}


def _build(model_name, dtype, **overrides):
  config = dcgan.get_config("smoke")
  config.model.name = model_name
  config.model.dtype = dtype
  config.unlock()
  set_fields(config, overrides)
  config.lock()
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  state = jax.jit(train.make_init(config, g, d, g_tx, d_tx))()
  size = config.data.image_size
  images = np.random.default_rng(0).integers(
      0, 256, (1, config.train.batch_size, size, size, 3), np.uint8)
  return train.make_step(config, g, d, g_tx, d_tx), state, jnp.asarray(images)


def test_compute_dtype_names_and_casts():
  assert precision.compute_dtype("float32") is None
  assert precision.compute_dtype("bfloat16") == jnp.bfloat16
  with pytest.raises(ValueError, match="unknown compute dtype 'fp16'; choose from: float32, bfloat16"):
    precision.compute_dtype("fp16")
  tree = {"w": jnp.ones(2), "count": jnp.zeros((), jnp.int32)}
  cast = precision.cast_floats(tree, jnp.bfloat16)
  assert cast["w"].dtype == jnp.bfloat16 and cast["count"].dtype == jnp.int32
  assert precision.like(cast, tree)["w"].dtype == jnp.float32


def test_an_unknown_dtype_fails_validation():
  config = dcgan.get_config("smoke")
  config.model.dtype = "half"
  with pytest.raises(train.ConfigError, match=r"config.model.dtype: unknown compute dtype 'half'"):
    train.validate_config(config)


@pytest.mark.parametrize("family", sorted(_FAMILIES))
def test_bfloat16_step_computes_in_bfloat16_and_keeps_float32_state(family):
  """Convolutions (and the transformer D's matrix products) run in bf16; params, optimizer
  state, EMA and statistics stay fp32, and the losses are close to the fp32 step's."""
  results = {}
  for dtype in ("float32", "bfloat16"):
    step, state, images = _build(family, dtype, **_FAMILIES[family])
    jaxpr = str(jax.make_jaxpr(step)(state, images))
    convs = [line for line in jaxpr.splitlines() if "conv_general_dilated" in line]
    assert convs and all(("bf16[" in line) == (dtype == "bfloat16") for line in convs)
    if family == "vit":
      products = [line for line in jaxpr.splitlines() if "dot_general" in line]
      assert products and all(("bf16[" in line) == (dtype == "bfloat16") for line in products)
    new_state, metrics = jax.jit(step)(state, images)
    for leaf in jax.tree.leaves(new_state):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)
    results[dtype] = metrics
  for name in ("d_loss", "g_loss"):
    np.testing.assert_allclose(results["bfloat16"][name], results["float32"][name],
                               rtol=0.05, atol=0.05)


def test_bfloat16_covers_the_ring_like_float32():
  """The toy ring (8 modes, SN layers in D): bf16 training covers it as fp32 does. Seed 0;
  the fp32 side of the claim, this config and step count, is tests/test_toy_lab.py's
  test_non_saturating_gan_with_sn_or_gp_covers_the_ring (>= 7 modes on seed 0)."""
  config = toy_ring.get_config()
  config.model.d_spectral_norm = True
  config.model.dtype = "bfloat16"
  states, _ = lab.train_seeds(config, [0], num_steps=2000)
  coverage = lab.mode_metrics_seeds(config, states)["modes_covered"]
  assert np.all(coverage >= 7), coverage
