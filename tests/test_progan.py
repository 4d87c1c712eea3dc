"""Progressive GAN: the growth schedule, what each level computes, and the recipe end to end."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcgan
from configs import progan as progan_config
from gan_jax import train
from gan_jax.models import progan
from gan_jax.step import GROWTH_LEVEL, Growth, apply_in_train_mode, growth_level
from test_step import same, step_and_state
from test_train import read_metrics, train_straight_and_resumed

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)

SIZE = 16  # levels 0 (4x4), 1 (8x8), 2 (16x16)


@functools.lru_cache(maxsize=None)
def _networks():
  """Tiny 16x16 networks, their parameters, latents and images (shared by the tests)."""
  g = progan.Generator(image_size=SIZE, width=4, channels=3, max_channels=16)
  d = progan.Discriminator(image_size=SIZE, width=4, max_channels=16)
  z = jax.random.normal(jax.random.key(0), (8, 5))
  g_params = jax.jit(g.init)(jax.random.key(1), z)["params"]
  x = jax.random.uniform(jax.random.key(2), (8, SIZE, SIZE, 3), minval=-1, maxval=1)
  d_params = jax.jit(d.init)(jax.random.key(3), x)["params"]
  return g, g_params, d, d_params, z, x


def _at(level):
  return {GROWTH_LEVEL: jnp.float32(level)}


@functools.partial(jax.jit, static_argnums=0)
def _apply(module, params, inputs, level):
  return module.apply({"params": params, "batch_stats": _at(level)}, inputs)


@pytest.mark.parametrize("stable, fade, expected", [
    # level for steps 0..13 (max_level 2)
    (2, 4, [0, 0, 0, .25, .5, .75, 1, 1, 1, 1.25, 1.5, 1.75, 2, 2]),
    (3, 0, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]),
    (0, 2, [0, .5, 1, 1.5, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]),
    (0, 0, [2] * 14),
])
def test_growth_level_schedule_hand_checked(stable, fade, expected):
  growth = Growth(max_level=2, stable_iters=stable, fade_iters=fade)
  levels = [float(growth_level(jnp.int32(t), growth)) for t in range(14)]
  np.testing.assert_allclose(levels, expected)


@pytest.mark.parametrize("level, stage, alpha", [
    (0.0, 0, 1.0), (0.25, 1, 0.25), (1.0, 1, 1.0), (1.5, 2, 0.5), (2.0, 2, 1.0), (7.0, 2, 1.0)])
def test_stage_and_alpha(level, stage, alpha):
  got_stage, got_alpha = progan.stage_and_alpha(jnp.float32(level), 2)
  assert int(got_stage) == stage and float(got_alpha) == pytest.approx(alpha)


@functools.partial(jax.jit, static_argnums=0)
def _grad(module, params, inputs, level):
  return jax.grad(lambda p: jnp.sum(_apply(module, p, inputs, level) ** 2))(params)


def _block_constant(images, block):
  """Whether every block x block square of each image is one colour."""
  n, h, w, c = images.shape
  blocks = np.asarray(images).reshape(n, h // block, block, w // block, block, c)
  return np.allclose(blocks, blocks[:, :, :1, :, :1], atol=1e-6)


def test_generator_draws_at_the_level_resolution_and_fades_linearly():
  g, g_params, *_, z = _networks()[:5]
  images = {level: np.asarray(_apply(g, g_params, z, level)) for level in (0, 0.5, 1, 2)}
  assert all(v.shape == (8, SIZE, SIZE, 3) for v in images.values())
  assert _block_constant(images[0], 4) and _block_constant(images[1], 2)
  assert not _block_constant(images[1], 4) and not _block_constant(images[2], 2)
  # The fade is a linear blend of the two resolutions' images, continuous at its ends.
  np.testing.assert_allclose(images[0.5], (images[0] + images[1]) / 2, atol=1e-5)
  np.testing.assert_allclose(_apply(g, g_params, z, 1e-6), images[0], atol=1e-4)


def test_discriminator_sees_the_level_resolution_only():
  *_, d, d_params, _, x = _networks()
  # Detail inside 4x4 blocks that keeps each block's mean: invisible at level 0 (4x4),
  # seen at level 2 (16x16).
  pattern = np.tile(np.array([[1.0, -1.0], [-1.0, 1.0]]), (SIZE // 2, SIZE // 2))
  detailed = x + 0.3 * jnp.asarray(pattern)[None, :, :, None]
  for level, invisible in ((0, True), (2, False)):
    same_logits = np.allclose(_apply(d, d_params, x, level),
                              _apply(d, d_params, detailed, level), atol=1e-5)
    assert same_logits == invisible, level
  # Continuous where a fade starts.
  np.testing.assert_allclose(_apply(d, d_params, x, 1 + 1e-6), _apply(d, d_params, x, 1),
                             atol=1e-4)


def _with_grads(tree):
  """The top-level layer names whose gradient is not all zero."""
  return {name for name, leaves in tree.items()
          if any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(leaves))}


def test_only_the_layers_in_use_get_gradients():
  g, g_params, d, d_params, z, x = _networks()
  def grads(level):
    return _with_grads(_grad(g, g_params, z, level)), _with_grads(_grad(d, d_params, x, level))
  g0, d0 = grads(0)
  assert g0 == {"dense", "conv4", "to_rgb_0"}
  assert d0 == {"from_rgb_0", "conv4", "dense", "out"}
  g_fade, d_fade = grads(0.5)  # level 1 fading in: both resolutions' RGB layers
  assert g_fade == g0 | {"conv_up_0", "conv_0", "to_rgb_1"}
  assert d_fade == d0 | {"from_rgb_1", "conv_0", "conv_down_0"}
  g2, _ = grads(2)
  assert "to_rgb_0" not in g2 and {"conv_up_1", "to_rgb_2"} <= g2


def test_switch_and_select_compute_the_same_networks():
  """model.branching: lax.switch (GPU/TPU default) and select (the CPU's) agree."""
  g, g_params, d, d_params, z, x = _networks()
  for level in (0.0, 0.5, 2.0):
    for module, params, inputs in ((g, g_params, z), (d, d_params, x)):
      outputs = {b: _apply(module.clone(branching=b), params, inputs, level)
                 for b in progan.BRANCHINGS}
      np.testing.assert_allclose(outputs["switch"], outputs["select"], rtol=1e-5, atol=1e-6)
  assert progan.resolve_branching("auto", "cpu") == "select"
  assert progan.resolve_branching("auto", "gpu") == "switch"
  with pytest.raises(ValueError, match="unknown model.branching 'cond'; choose from: "
                     "switch, select, auto"):
    progan.resolve_branching("cond")


def test_networks_need_their_growth_level():
  g, g_params, *_, z = _networks()[:5]
  with pytest.raises(ValueError, match="growth level from batch_stats/growth_level"):
    g.apply({"params": g_params}, z)


def test_bfloat16_networks_stay_close_to_float32():
  g, g_params, d, d_params, z, x = _networks()
  run = jax.jit(apply_in_train_mode, static_argnums=0, static_argnames="dtype")
  for module, params, inputs in ((g, g_params, z), (d, d_params, x)):
    full, _ = run(module, params, _at(1.5), inputs)
    half, stats = run(module, params, _at(1.5), inputs, dtype=jnp.bfloat16)
    assert half.dtype == jnp.float32 and stats[GROWTH_LEVEL].dtype == jnp.float32
    assert float(jnp.linalg.norm(half - full)) < 0.05 * float(jnp.linalg.norm(full))  # 2% seen


@pytest.mark.parametrize("overrides, message", [
    ({"model.d_spectral_norm": True}, "equalised learning rates"),
    ({"model.growth.fade_iters": -1}, "fade_iters >= 0"),
    ({"data.image_size": 12}, "power of two >= 8"),
])
def test_bad_progan_options_are_refused(overrides, message):
  config = progan_config.get_config("smoke")
  for field, value in overrides.items():
    section, *rest = field.split(".")
    node = config[section]
    for key in rest[:-1]:
      node = node[key]
    node[rest[-1]] = value
  with pytest.raises(ValueError, match=message):
    g, d = train.make_models(config)
    train.make_growth(config.model, g)


def test_non_square_images_are_refused():
  config = progan_config.get_config("smoke")
  with pytest.raises(ValueError, match=r"ProGAN needs square images .* shape \(16, 8, 3\)"):
    progan.build_progan(config.model, (16, 8, 3))


def test_growth_belongs_to_growing_models():
  config = dcgan.get_config("smoke")
  config.model.growth = {"stable_iters": 1, "fade_iters": 1}
  g, _ = train.make_models(config)
  with pytest.raises(ValueError, match="model 'dcgan' does not grow"):
    train.make_growth(config.model, g)
  config = progan_config.get_config("smoke")
  g, _ = train.make_models(config)
  del config.model["growth"]  # a progan model without a schedule: full size at once
  assert train.make_growth(config.model, g) == Growth(max_level=1, stable_iters=0, fade_iters=0)
  config.model.growth = {"stable": 1}
  with pytest.raises(ValueError, match="unknown model.growth option.s. stable; choose"):
    train.make_growth(config.model, g)


def test_progan_recipe_grows_logs_and_resumes_exactly(tmp_path, face_data, cache_dir):
  config = progan_config.get_config("smoke")
  config.data.source, config.data.cache_dir = face_data, cache_dir
  config.train.batch_size = 8
  straight, resumed = train_straight_and_resumed(config, tmp_path, total=5, first=3)
  assert same(straight, resumed)
  rows = read_metrics(tmp_path / "straight")
  assert [row["growth_level"] for row in rows] == [0, 0, 0.5, 1, 1]
  assert all(np.isfinite(row["d_loss"]) and np.isfinite(row["drift_penalty"]) for row in rows)
  # The checkpointed statistics hold the level its weights were last trained at.
  assert float(straight.g_stats[GROWTH_LEVEL]) == float(straight.d_stats[GROWTH_LEVEL]) == 1


def test_conditional_networks_use_the_labels_at_every_level():
  """Conditional ProGAN: at a stable, a fading and the full level, G's images and D's logits
  follow the labels (a sample whose labels are unchanged keeps its logit exactly), the
  switch and select forms agree, AC-GAN heads give class logits, and the label embedding
  and D's conditional head train at every level."""
  g = progan.Generator(image_size=SIZE, width=4, channels=3, max_channels=16,
                       label_classes=(3, 4), embed_dim=2)
  d = progan.Discriminator(image_size=SIZE, width=4, max_channels=16, label_classes=(3, 4),
                           d_cond="projection+acgan")
  _, _, _, _, z, x = _networks()
  labels = jnp.array([[0, 1], [2, 3], [1, 0], [0, 0]] * 2, jnp.int32)
  other = labels.at[0].set(jnp.array([2, 2]))  # only sample 0's labels change
  g_params = jax.jit(g.init)(jax.random.key(1), z, labels)["params"]
  d_params = jax.jit(d.init)(jax.random.key(3), x, labels)["params"]
  assert "label_embedding" in g_params and "conditional" in d_params

  @functools.partial(jax.jit, static_argnums=(0, 1))
  def run(branching, aux, params, inputs, y, level):
    module = (d if aux else g).clone(branching=branching)
    return module.apply({"params": params, "batch_stats": _at(level)}, inputs, y,
                        **({"return_aux": True} if aux else {}))

  for level in (0.0, 0.5, 2.0):
    images = {b: run(b, False, g_params, z, labels, level) for b in progan.BRANCHINGS}
    np.testing.assert_allclose(images["switch"], images["select"], rtol=1e-5, atol=1e-6)
    moved = run("select", False, g_params, z, other, level)
    assert float(jnp.max(jnp.abs(moved[0] - images["select"][0]))) > 1e-6
    np.testing.assert_array_equal(moved[1:], images["select"][1:])
    (logits, aux), (switched, _) = (run(b, True, d_params, x, labels, level)
                                    for b in ("select", "switch"))
    np.testing.assert_allclose(switched, logits, rtol=1e-5, atol=1e-6)
    diff = np.asarray(run("select", True, d_params, x, other, level)[0] - logits)
    assert abs(diff[0]) > 1e-6 and not diff[1:].any()
    assert aux["0"].shape == (8, 3) and aux["1"].shape == (8, 4)
    grad = jax.grad(lambda p, level=level: jnp.sum(run("select", False, p, z, labels, level)**2))
    assert "label_embedding" in _with_grads(grad(g_params))
    grad = jax.grad(lambda p, level=level: jnp.sum(run("select", True, p, x, labels, level)[0]**2))
    assert "conditional" in _with_grads(grad(d_params))
  with pytest.raises(ValueError, match="is conditional .* call it with labels"):
    g.apply({"params": g_params, "batch_stats": _at(0.0)}, z)
  with pytest.raises(ValueError, match="unconditional"):
    _networks()[2].apply({"params": _networks()[3], "batch_stats": _at(0.0)}, x, labels)


def test_conditional_progan_step_trains_on_labelled_batches():
  """configs/progan.py conditioned like configs/anime_tags.py (its on_hair_and_eyes): the step
  grows, trains both networks' conditional parts and depends on the labels."""
  from configs import anime_tags  # pylint: disable=g-import-not-at-top
  from gan_jax.data import LabeledBatch  # pylint: disable=g-import-not-at-top
  config = anime_tags.on_hair_and_eyes(progan_config.get_config("smoke"))
  config.train.batch_size = 8
  train.validate_config(config)
  step, state = step_and_state(config)
  step = jax.jit(step)
  size = config.data.image_size
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, 8, size, size, 3), np.uint8))
  labels = jnp.asarray(np.arange(16).reshape(1, 8, 2) % 13, jnp.int32)
  one, metrics = step(state, LabeledBatch(images, labels))
  other, _ = step(state, LabeledBatch(images, (labels + 1) % 13))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert not same(one.g_params["label_embedding"], state.g_params["label_embedding"])
  assert not same(one.d_params["conditional"], state.d_params["conditional"])
  assert not same(one.d_params, other.d_params) and not same(one.g_params, other.g_params)
