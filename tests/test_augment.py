"""DiffAugment (gan_jax/augment.py): each augmentation, the policy, the train step with it,
penalties through it, and ADA's adaptive probability."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import dcgan
from gan_jax import augment, train
from gan_jax.errors import ConfigError
from gan_jax.step import Ada
from test_step import same
from test_train import train_straight_and_resumed

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)

NAMES = ["color", "translation", "cutout", "flip"]


def images(n=4, size=16, seed=0):
  """A float batch of random NHWC images in [-1, 1]."""
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, size, size, 3), jnp.float32, -1.0, 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_off_at_p_zero(name):
  x = images()
  out = jax.jit(augment.make_augment(name, 1.0))(jax.random.PRNGKey(1), x)
  assert out.shape == x.shape and out.dtype == x.dtype
  assert bool(jnp.all(jnp.isfinite(out))) and not np.array_equal(out, x)
  assert augment.make_augment(name, 0.0) is None  # p = 0: the step does not augment at all
  assert augment.make_augment("", 1.0) is None and augment.make_augment(" , ", 0.5) is None


@pytest.mark.parametrize("name", NAMES)
def test_p_chooses_per_sample(name):
  x = images(n=64)
  out = augment.make_augment(name, 0.5)(jax.random.PRNGKey(2), x)
  unchanged = np.array([np.array_equal(a, b) for a, b in zip(out, x)])
  assert 10 < unchanged.sum() < 54  # about half of the samples are left exactly as they were


@pytest.mark.parametrize("name", NAMES)
def test_same_key_same_output_other_key_other_output(name):
  fn = augment.make_augment(name, 1.0)
  x = images()
  a, b = fn(jax.random.PRNGKey(3), x), fn(jax.random.PRNGKey(3), x)
  c = fn(jax.random.PRNGKey(4), x)
  assert np.array_equal(a, b)
  assert not np.array_equal(a, c)


def test_flip_mirrors_about_half_the_samples_exactly():
  x = images(n=64)
  out = np.asarray(augment.flip(jax.random.PRNGKey(5), x))
  mirrored = np.array([np.array_equal(o, a[:, ::-1]) for o, a in zip(out, np.asarray(x))])
  kept = np.array([np.array_equal(o, a) for o, a in zip(out, np.asarray(x))])
  assert np.all(mirrored ^ kept) and 20 < mirrored.sum() < 44


def test_translate_moves_pixels_exactly():
  x = jnp.arange(2 * 8 * 8, dtype=jnp.float32).reshape(2, 8, 8, 1) + 1.0  # no zero pixels
  assert augment.max_shift(x) == (1, 1)
  out = np.asarray(augment.translate(x, jnp.array([[1, 0], [-1, 1]])))
  x = np.asarray(x)
  # Image 0 moved down by one row: the first row is zero padding.
  np.testing.assert_array_equal(out[0, 1:], x[0, :-1])
  np.testing.assert_array_equal(out[0, 0], 0.0)
  # Image 1 moved up by one row and right by one column.
  np.testing.assert_array_equal(out[1, :-1, 1:], x[1, 1:, :-1])
  np.testing.assert_array_equal(out[1, -1], 0.0)
  np.testing.assert_array_equal(out[1, :, 0], 0.0)
  # Hand-checked corner: out[1, 0, 1] = x[1, 1, 0].
  assert out[1, 0, 1, 0] == x[1, 1, 0, 0] == 64 + 8 + 1


def test_translation_shifts_stay_within_an_eighth():
  x = jnp.ones((256, 16, 16, 1))
  out = np.asarray(augment.make_augment("translation")(jax.random.PRNGKey(5), x))
  zero_rows = (out[..., 0] == 0).all(axis=2).sum(axis=1)  # rows of padding per image
  zero_cols = (out[..., 0] == 0).all(axis=1).sum(axis=1)
  assert set(zero_rows) == {0, 1, 2} and set(zero_cols) == {0, 1, 2}  # |shift| <= 16 / 8


def test_cutout_zeroes_one_square_of_half_the_size():
  x = images(n=32) * 0.5 + 0.75  # in [0.25, 1.25]: no pixel is 0 before the cut
  out = np.asarray(augment.make_augment("cutout")(jax.random.PRNGKey(6), x))
  assert augment.cutout_size(x) == (8, 8)
  for image, original in zip(out, np.asarray(x)):
    zero = (image == 0).all(axis=-1)
    rows, cols = np.nonzero(zero.any(axis=1))[0], np.nonzero(zero.any(axis=0))[0]
    assert zero.sum() == 64 and len(rows) == 8 and len(cols) == 8  # one 8x8 square
    assert rows[-1] - rows[0] == 7 and cols[-1] - cols[0] == 7
    np.testing.assert_array_equal(image[~zero], original[~zero])


def test_color_range():
  x = images(n=64)
  out = np.asarray(augment.make_augment("color")(jax.random.PRNGKey(7), x))
  assert np.abs(out).max() < 6.0 and np.quantile(np.abs(out), 0.99) < 3.0
  assert np.abs(out.mean(axis=(1, 2, 3)) - np.asarray(x).mean(axis=(1, 2, 3))).max() <= 0.5 + 1e-5
  # A flat grey image stays flat: only its brightness moves, by at most 0.5.
  grey = np.asarray(augment.color(jax.random.PRNGKey(8), jnp.zeros((8, 4, 4, 3))))
  assert np.allclose(grey, grey[:, :1, :1, :1], atol=1e-6) and np.abs(grey).max() <= 0.5


@pytest.mark.parametrize("name", NAMES + ["color,translation,cutout"])
def test_differentiable(name):
  fn = augment.make_augment(name, 1.0)
  x = images()
  weights = images(seed=9)  # a non-constant weighting, so color's gradient is not ~0
  grad = jax.grad(lambda x: jnp.sum(weights * fn(jax.random.PRNGKey(10), x)))(x)
  assert bool(jnp.all(jnp.isfinite(grad)))
  assert float(jnp.abs(grad).sum()) > 0
  if name == "cutout":  # a quarter of every image does not reach the output
    assert float(jnp.mean(grad == 0)) == pytest.approx(0.25, abs=0.02)


def test_unknown_name_lists_the_valid_ones():
  with pytest.raises(ValueError, match="unknown augmentation 'rotate'; choose from: ada_color, "
                     "ada_geometric, color, cutout, flip, translation, ada$"):
    augment.make_augment("color,rotate")
  with pytest.raises(ValueError, match="listed twice"):
    augment.parse_policy("color,color")
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    augment.make_augment("color", 1.5)


@pytest.mark.parametrize("field, value, message", [
    ("policy", "colour", "config.augment.policy: unknown augmentation 'colour'; choose from: "
     "ada_color, ada_geometric, color, cutout, flip, translation, ada"),
    ("p", -0.1, r"config.augment.p must be in \[0, 1\], got -0.1"),
    ("penalty_grad", "raw", "unknown config.augment.penalty_grad 'raw'; choose from: "
     "augmented, through"),
    ("ada_target", 1.5, r"config.augment: ada_target needs to be in \(0, 1\) and ada_kimg > 0, "
     "got 1.5 and 500.0"),
    ("ada_kimg", 0.0, "ada_kimg > 0, got 0.6 and 0.0"),
    ("p_final", 1.5, r"config.augment.p_final must be in \[0, 1\] \(or -1: augment.p "
     r"throughout\), got 1.5"),
    ("p_final", 0.3, "config.augment.p_final=0.3 anneals along optim.schedule's decay; "
     "optim.schedule='constant' has none"),
    ("ada_target", 0.6, "config.augment.p_final anneals the augmentations' probability and "
     "augment.ada_target adapts it: set one of them"),
    ("policy", "", "config.augment.p_final=0.3 anneals the probability of augmentations, but "
     "augment.policy lists none"),
])
def test_bad_config_fails_validation(field, value, message):
  config = dcgan.get_config("smoke")
  config.augment.policy = "translation"
  if field == "ada_kimg":
    config.augment.ada_target = 0.6
  if "p_final" in message and field != "p_final":
    config.augment.p_final = 0.3
    config.optim.schedule = "linear"
  config.augment[field] = value
  with pytest.raises(ConfigError, match=message):
    train.validate_config(config)


def test_toy_configs_without_the_section_still_validate():
  from configs import toy_ring  # pylint: disable=g-import-not-at-top
  config = toy_ring.get_config()
  assert config.get("augment") is None
  train.validate_config(config)


def run_step(config, state=None, repeat=1):
  """(initial state, [(new state, metrics)] * repeat) of the jitted train step of `config`
  from its initial state (or `state`)."""
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  if state is None:
    state = jax.jit(train.make_init(config, g, d, g_tx, d_tx))()
  size, batch = config.data.image_size, config.train.batch_size
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, batch, size, size, 3), np.uint8))
  step = jax.jit(train.make_step(config, g, d, g_tx, d_tx))
  return state, [step(state, x) for _ in range(repeat)]


def smoke(policy=None, p=1.0):
  """The tiny anime config with batch 8; policy None removes the augment section."""
  config = dcgan.get_config("smoke")
  config.train.batch_size = 8
  if policy is None:
    del config["augment"]
  else:
    config.augment.policy, config.augment.p = policy, p
  return config


def test_train_step_with_augmentation():
  state, [(off_state, off_metrics)] = run_step(smoke(None))
  _, [(empty_state, empty_metrics)] = run_step(smoke(""), state)
  leaves = lambda t: jax.tree.leaves(t)
  # policy '' is the default step, bit for bit.
  assert all(np.array_equal(a, b) for a, b in zip(leaves((off_state, off_metrics)),
                                                  leaves((empty_state, empty_metrics))))
  config = smoke("color,translation,cutout")
  config.penalty.use = "r1"  # penalties take the augmented batches
  train.validate_config(config)
  _, [(on_state, on_metrics), (again_state, _)] = run_step(config, state, repeat=2)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves((on_state, on_metrics)))
  assert float(on_metrics["d_real"]) != float(off_metrics["d_real"])
  for field in ("d_params", "g_params"):  # both updates see augmented images
    assert not all(np.array_equal(a, b) for a, b in zip(
        leaves(getattr(on_state, field)), leaves(getattr(off_state, field)))), field
  assert all(np.array_equal(a, b) for a, b in zip(leaves(on_state), leaves(again_state)))


def r1_by_hand(step, state, x, key, through):
  """1/2 mean_i ||grad D||^2 of D's R1 in the D update with `key` on the float reals x: the
  gradient w.r.t. the raw x through the reals' augmentation, or w.r.t. the augmented x."""
  augment_reals = lambda x: step._augmented(key, x, 0)
  d = lambda x: jnp.sum(step._d(state.d_params, state.d_stats, x, None)[0])
  grads = (jax.grad(lambda x: d(augment_reals(x)))(x) if through
           else jax.grad(d)(augment_reals(x)))
  return 0.5 * jnp.mean(jnp.sum(jnp.square(grads.reshape(len(x), -1)), axis=1))


@pytest.mark.parametrize("policy", ["translation,cutout", ""])
def test_penalty_gradient_through_the_augmentation(policy):
  """augment.penalty_grad=through: R1's input gradient is taken w.r.t. the raw reals, back
  through the augmentation D's loss applied to them (StyleGAN2-ADA); 'augmented' w.r.t. the
  augmented reals. Without augmentation the two are the same penalty."""
  penalties = {}
  for penalty_grad in ("augmented", "through"):
    config = smoke(policy)
    config.penalty.use = "r1"
    config.augment.penalty_grad = penalty_grad
    train.validate_config(config)
    g, d = train.make_models(config)
    g_tx, d_tx = train.make_optimizers(config)
    state = jax.jit(train.make_init(config, g, d, g_tx, d_tx))()
    step = train.make_step(config, g, d, g_tx, d_tx)
    x = images(n=8)
    key = jax.random.PRNGKey(7)
    _, metrics = jax.jit(step.d_update)(state, x, key)
    penalties[penalty_grad] = float(metrics["r1_penalty"])
    expected = r1_by_hand(step, state, x, key, through=penalty_grad == "through")
    np.testing.assert_allclose(penalties[penalty_grad], expected, rtol=1e-4)
  if policy:
    assert abs(penalties["through"] - penalties["augmented"]) > 1e-3 * penalties["augmented"]
  else:
    assert penalties["through"] == penalties["augmented"]


def test_a_given_probability_replaces_the_static_one(fusion_emitters):
  """fn(key, x, p): ADA's traced p draws the same per-sample coins as a static p; p = 1
  augments every sample as the static default does, p = 0 none."""
  x, key = images(n=16), jax.random.PRNGKey(3)
  always = augment.make_augment("color,translation,cutout", 1.0)
  half = augment.make_augment("color,translation,cutout", 0.5)
  np.testing.assert_array_equal(jax.jit(always)(key, x, jnp.float32(0.5)), jax.jit(half)(key, x))
  np.testing.assert_array_equal(always(key, x, jnp.float32(1.0)), always(key, x))
  np.testing.assert_array_equal(always(key, x, jnp.float32(0.0)), x)


def test_an_annealed_probability_is_the_probability_of_the_iteration():
  """augment.p_final: p annealed 0 -> 0.3 along a linear decay over 10 iterations. Iteration
  5's update (p = 0.15: the same per-sample coins) is the update with p fixed at 0.15; at
  p 0.3 it is another."""
  config = smoke("translation", 0.0)
  config.augment.p_final, config.optim.schedule, config.train.num_steps = 0.3, "linear", 10
  train.validate_config(config)
  state, _ = run_step(config, repeat=0)
  at5 = state.replace(step=jnp.int32(5))
  _, [(annealed, metrics)] = run_step(config, at5)
  for p, equal in ((0.15, True), (0.3, False)):
    fixed = smoke("translation", p)
    fixed.optim.schedule, fixed.train.num_steps = "linear", 10
    _, [(ours, _)] = run_step(fixed, at5)
    close = jax.tree.leaves(jax.tree.map(lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-7),
                                         annealed.d_params, ours.d_params))
    assert all(close) == equal, p
  assert "augment_p" not in metrics  # (not training state: the metrics rows log it)
  assert train.scheduled_values(config, 5)["augment_p"] == pytest.approx(0.15)


def ada_smoke(p=0.5, target=0.6, kimg=0.08):
  """smoke() with translation under ADA (batch 8: p moves by 8 / (kimg * 1000) a step)."""
  config = smoke("translation", p)
  config.augment.ada_target, config.augment.ada_kimg = target, kimg
  return config


def test_ada_moves_p_by_the_sign_of_the_overfitting_heuristic():
  """After each iteration p moves by sign(r - target) * batch / (kimg * 1000) within [0, 1],
  r being the mean sign of D's logits on the augmented reals; the iteration used the old p."""
  config = ada_smoke(p=0.15)
  train.validate_config(config)
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  state = jax.jit(train.make_init(config, g, d, g_tx, d_tx))()
  assert float(state.d_stats["ada_p"]) == np.float32(0.15)
  step = jax.jit(train.make_step(config, g, d, g_tx, d_tx))
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 8, 16, 16, 3), np.uint8))
  seen = set()
  for _ in range(4):
    p = float(state.d_stats["ada_p"])
    state, metrics = step(state, x)
    r = float(metrics["ada_r"])
    assert float(metrics["augment_p"]) == p and -1.0 <= r <= 1.0
    expected = min(1.0, max(0.0, p + np.sign(r - 0.6) * 0.1))
    np.testing.assert_allclose(float(state.d_stats["ada_p"]), expected, atol=1e-6)
    seen.add(float(np.sign(r - 0.6)))
  assert seen  # at least one direction exercised; p stays a probability either way
  assert 0.0 <= float(state.d_stats["ada_p"]) <= 1.0


def test_ada_at_p_zero_is_the_unaugmented_step(fusion_emitters):
  """ADA starting at p = 0 (as the paper does) changes no image in its first iteration: the
  same update as without augmentation, bit for bit."""
  state, [(off_state, off_metrics)] = run_step(smoke(None))
  config = ada_smoke(p=0.0)
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  ada_state = state.replace(d_stats={**state.d_stats, "ada_p": jnp.float32(0.0)})
  _, [(on_state, on_metrics)] = run_step(config, ada_state)
  for name in ("d_params", "g_params", "ema_params", "d_opt_state", "g_opt_state"):
    assert same(getattr(on_state, name), getattr(off_state, name)), name
  assert float(on_metrics["d_loss"]) == float(off_metrics["d_loss"])
  assert float(on_metrics["augment_p"]) == 0.0


def test_ada_options_default_to_the_paper_where_a_config_has_none():
  section = ml_collections.ConfigDict({"policy": "translation", "p": 0.0, "ada_target": 0.6})
  assert train.make_ada(section) == Ada(target=0.6, kimg=500.0)
  section.ada_target = 0.0
  assert train.make_ada(section) is None and train.make_ada(None) is None


def test_ada_without_augmentations_is_refused():
  config = ada_smoke()
  config.augment.policy = ""
  with pytest.raises(ConfigError, match="adapts the probability of augmentations, but "
                     "augment.policy lists none"):
    train.validate_config(config)


def test_ada_run_resumes_exactly_with_its_probability(tmp_path, smoke_config):
  """ADA's p is training state: a run stopped and resumed ends where an uninterrupted one
  does (p included), and the metrics rows log p."""
  smoke_config.augment.policy = "translation,cutout"
  smoke_config.augment.p = 0.5
  smoke_config.augment.ada_target = 0.6
  smoke_config.augment.ada_kimg = 0.16  # batch 16: p moves by 0.1 an iteration
  straight, resumed = train_straight_and_resumed(smoke_config, tmp_path, 6, 3)
  assert same(straight, resumed)
  with open(tmp_path / "straight" / "metrics.jsonl") as f:
    p = [json.loads(line)["augment_p"] for line in f]
  assert len(p) == 6 and p[0] == 0.5
  np.testing.assert_allclose(np.abs(np.diff(p)), 0.1, atol=1e-6)  # it moved every iteration
