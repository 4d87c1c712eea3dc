"""Every config file: it builds, its smoke variant trains, and its recipe holds after training."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import constraints, train
from test_train import read_metrics

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)

RECIPES = ["dcgan", "anime", "gan", "lsgan", "wgan", "wgan_gp", "dragan", "sngan", "sngan_resnet",
           "stylegan2", "vit_d", "r3gan"]


# The smoke runs of began and progan (with a resume) are tests/test_began.py's and
# test_progan.py's; anime_tags' (with a resume) and biggan's (with evaluation)
# tests/test_conditional.py's; biggan_deep's tests/test_biggan_deep.py's.
@pytest.mark.parametrize("name", RECIPES + ["anime_tags", "began", "biggan", "biggan_deep",
                                            "progan", "toy_ring", "toy_grid", "stylegan2_tags"])
def test_full_config_validates(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  train.validate_config(config)
  assert config.train.num_steps > 0


@pytest.mark.parametrize("name", RECIPES[2:])  # dcgan: conftest's smoke_config; anime below
def test_recipe_smoke_run(name, tmp_path, face_data, cache_dir):
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  config.data.source = face_data
  config.data.cache_dir = cache_dir
  config.train.num_steps = 2
  state = train.train_and_evaluate(config, str(tmp_path))
  rows = read_metrics(tmp_path)
  assert len(rows) == 2 and all(np.isfinite(r["d_loss"]) for r in rows)
  d_leaves = jax.tree_util.tree_leaves_with_path(state.d_params)
  if name == "wgan":
    assert max(float(jnp.max(jnp.abs(x))) for _, x in d_leaves) <= 0.01
  if name == "wgan_gp":
    assert rows[-1]["wgan_gp_penalty"] > 0
  if name == "dragan":
    assert rows[-1]["dragan_penalty"] > 0
  if name == "stylegan2":
    assert "r1_penalty" in rows[-1]  # lazy R1 (every 16): applied at iteration 0 of each 16
  if name == "r3gan":  # RpGAN with R1 and R2; rate, gamma and beta2 annealed on one cosine
    assert rows[-1]["r1_penalty"] > 0 and rows[-1]["r2_penalty"] > 0
    first = {k: rows[0][k] for k in ("g_lr", "d_lr", "r1_weight", "r2_weight", "g_beta2")}
    assert first == pytest.approx(dict(g_lr=2e-4, d_lr=2e-4, r1_weight=2, r2_weight=2,
                                       g_beta2=0.9))
    # Iteration 1 of the smoke preset's 2 is halfway down the cosine.
    assert rows[-1]["g_lr"] == pytest.approx(1.25e-4) and rows[-1]["d_beta2"] == pytest.approx(
        0.945) and rows[-1]["r1_weight"] == pytest.approx(1.1)
    # The EMA's half-life: 0 images at iteration 0 (the EMA is G), 250k halfway; the
    # augmentations' probability 0, then 0.15.
    assert rows[0]["ema_decay"] == 0.0 and rows[-1]["ema_decay"] == pytest.approx(
        0.5**(config.train.batch_size / 250_000))
    assert rows[0]["augment_p"] == 0.0 and rows[-1]["augment_p"] == pytest.approx(0.15)
  if name == "vit_d":
    assert "block_0" in state.d_params and "r1_penalty" in rows[-1]
  if name == "sngan":
    kernels = [x for path, x in d_leaves if "kernel" in jax.tree_util.keystr(path)]
    sigmas = [float(jnp.linalg.svd(constraints.as_matrix(k), compute_uv=False)[0]) for k in kernels]
    assert max(sigmas) <= 1 + 1e-3


def test_anime_is_the_measured_winner_sngan_resnet():
  """configs/anime.py is the recipe benchmarks/architectures.md crowned, presets included."""
  from configs import anime, sngan_resnet  # pylint: disable=g-import-not-at-top
  for preset in ("", "smoke"):
    assert anime.get_config(preset).to_dict() == sngan_resnet.get_config(preset).to_dict()
  assert anime.get_config().model.name == "resnet"


def test_unknown_preset_is_refused():
  from configs import dcgan  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="choose from: smoke"):
    dcgan.get_config("tiny")


def test_consistency_penalties_need_an_augmentation_and_images():
  from configs import dcgan, toy_ring  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  config = dcgan.get_config("smoke")
  config.penalty.use = "cr, cr_fake"
  train.validate_config(config)
  config.penalty.cr_fake.policy = ""
  with pytest.raises(ConfigError, match="penalty.cr_fake.policy names no augmentation: choose "
                                        "from ada_color, ada_geometric, color, cutout, flip, "
                                        "translation"):
    train.validate_config(config)
  config.penalty.cr_fake.policy = "rotate"
  with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
    train.validate_config(config)
  toy = toy_ring.get_config()
  toy.penalty.use = "cr"
  with pytest.raises(ConfigError, match="penalty 'cr' augments images; toy data has none"):
    train.validate_config(toy)


def test_consistency_on_a_batchnorm_discriminator_is_flagged():
  """bCR on DCGAN's BatchNorm D was measured to stop training (benchmarks/README.md), so
  validation warns about it; a D without BatchNorm, or no consistency term, is not flagged."""
  from configs import dcgan, sngan  # pylint: disable=g-import-not-at-top
  config = dcgan.get_config("smoke")
  assert train.consistency_caution(config) is None
  config.penalty.use = "r1,cr,cr_fake"
  config.penalty.cr_fake.weight = 1.0
  caution = train.consistency_caution(config)
  assert caution.startswith("penalty.use=cr,cr_fake (weight cr 10, cr_fake 1) on DCGAN's "
                            "BatchNorm discriminator")
  config.model.d_norm = "none"
  assert train.consistency_caution(config) is None
  config = sngan.get_config("smoke")
  config.penalty.use = "cr,cr_fake"
  assert train.consistency_caution(config) is None


@pytest.mark.parametrize("field, value, message", [
    ("constraint.d", "clip", "config.constraint.d: unknown constraint 'clip'; choose from: '' "
     "(none), spectral_norm_projection, weight_clip"),
    ("penalty.use", "gp", "config.penalty: unknown penalty 'gp'; choose from: cr, cr_fake, dragan, "
     "drift, r1, r2, wgan_gp"),
    ("model.d_norm", "group", "unknown model.d_norm 'group'; choose from: batch, layer, none"),
    ("data.feed", "tape", "choose from: auto, device, host, stream"),
    ("data.source", "tfsd:x", "unknown data source scheme 'tfsd'"),
    ("model.discriminator", "transformer", "config.model (for data "),
    ("model.discriminator", "transformer", "unknown discriminator 'transformer'; choose from: vit"),
])
def test_bad_names_fail_validation_with_the_choices(field, value, message):
  from configs import dcgan  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  config = dcgan.get_config("smoke")
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(ConfigError) as e:
    train.validate_config(config)
  assert message in str(e.value)
