"""StyleGAN2-ADA's augmentation pipeline (gan_jax/ada_pipeline.py): the warp and the colour
maps by hand, the probabilities of its transformations, and the policy 'ada'."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import ada_pipeline as ada
from gan_jax import augment


def images(n=4, size=8, seed=0, channels=3):
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, size, size, channels), jnp.float32,
                            -1.0, 1.0)


def repeat(matrix, n):
  return jnp.broadcast_to(matrix, (n, 3, 3))


def test_the_warp_moves_pixels_as_its_matrix_says():
  """Output pixel (i, j) samples the input at M (j - c, i - c, 1): the identity, a mirror, a
  quarter turn (np.rot90) and an integer shift land on pixel centres (exact but for
  cos(pi/2)'s rounding), the shift mirroring the border without repeating the edge."""
  x = images()
  n, one = x.shape[0], jnp.ones(x.shape[0])
  np.testing.assert_array_equal(ada.warp(x, repeat(jnp.eye(3), n)), x)
  np.testing.assert_array_equal(ada.warp(x, ada.scale_matrices(-one, one)), x[:, :, ::-1])
  np.testing.assert_allclose(ada.warp(x, ada.rotation_matrices(one * np.pi / 2)),
                             np.rot90(x, axes=(1, 2)), atol=1e-5)
  shifted = ada.warp(x, ada.translation_matrices(2 * one, 0 * one))  # samples x + 2
  np.testing.assert_array_equal(
      shifted, np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)), mode="reflect")[:, :, 4:12])


def test_the_warp_is_linear_and_keeps_a_flat_image_flat():
  x, y = images(seed=1), images(seed=2)
  matrices = ada.geometric_matrices(jax.random.PRNGKey(3), 4, 8, 8, 1.0)
  np.testing.assert_allclose(ada.warp(2 * x - 3 * y, matrices),
                             2 * ada.warp(x, matrices) - 3 * ada.warp(y, matrices), atol=1e-5)
  flat = jnp.full((4, 8, 8, 3), 0.25)
  np.testing.assert_allclose(ada.warp(flat, matrices), 0.25, atol=1e-6)


def test_each_geometric_transformation_happens_with_its_probability():
  """Over 4,000 samples: p = 0 draws the identity; the x-flip (the only transformation with a
  negative determinant) happens with probability p / 2; |det| = the isotropic scale
  squared, 2^N(0, 0.2^2) where drawn (rotations and the anisotropic scale keep area)."""
  n = 4000
  none = ada.geometric_matrices(jax.random.PRNGKey(0), n, 16, 16, 0.0)
  np.testing.assert_array_equal(none, repeat(jnp.eye(3), n))
  for p in (1.0, 0.5):
    matrices = np.asarray(ada.geometric_matrices(jax.random.PRNGKey(1), n, 16, 16, p))
    np.testing.assert_allclose(matrices[:, 2], np.tile([0.0, 0.0, 1.0], (n, 1)))
    det = np.linalg.det(matrices[:, :2, :2])
    assert np.mean(det < 0) == pytest.approx(p / 2, abs=0.03), p
    log_scale = -np.log2(np.abs(det)) / 2  # the sampling map is the inverse transformation
    assert np.mean(np.abs(log_scale) > 1e-4) == pytest.approx(p, abs=0.03)
  assert np.std(log_scale[np.abs(log_scale) > 1e-4]) == pytest.approx(ada.SCALE_STD, rel=0.1)


def test_the_colour_maps_by_hand():
  """Hue rotation and saturation keep luma (the mean of R, G, B) and keep greys grey; a
  zero saturation leaves the grey of each pixel's mean; the luma flip is its own inverse
  and negates luma; p = 0 is the identity."""
  rgb = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
  luma = lambda v: v.mean(-1)
  for matrices in (ada.hue_matrices(jnp.linspace(-3, 3, 5)),
                   ada.saturation_matrices(jnp.linspace(0, 4, 5))):
    out = jnp.einsum("nij,nj->ni", matrices, rgb)
    np.testing.assert_allclose(luma(out), luma(rgb), atol=1e-5)
    grey = jnp.einsum("nij,j->ni", matrices, jnp.full(3, 0.3))
    np.testing.assert_allclose(grey, 0.3, atol=1e-6)
  np.testing.assert_allclose(
      jnp.einsum("nij,nj->ni", ada.saturation_matrices(jnp.zeros(5)), rgb),
      jnp.repeat(luma(rgb)[:, None], 3, axis=1), atol=1e-6)
  flip = ada.luma_flip_matrix()
  np.testing.assert_allclose(flip @ flip, jnp.eye(3), atol=1e-6)
  np.testing.assert_allclose(luma(rgb @ flip.T), -luma(rgb), atol=1e-5)
  matrix, offset = ada.color_transforms(jax.random.PRNGKey(1), 6, 0.0)
  np.testing.assert_array_equal(matrix, jnp.broadcast_to(jnp.eye(3), (6, 3, 3)))
  np.testing.assert_array_equal(offset, 0.0)


def test_brightness_and_contrast_move_a_black_image_along_the_grey_axis():
  """A zero image gets contrast x brightness on every channel (then perhaps luma-flipped):
  still grey; over 4,000 samples at p = 1 its value's std is about
  E[contrast^2]^(1/2) x 0.2."""
  out = np.asarray(ada.ada_color(jax.random.PRNGKey(2), jnp.zeros((4000, 1, 1, 3)), 1.0))
  np.testing.assert_allclose(out, np.repeat(out[..., :1], 3, axis=-1), atol=1e-6)
  spread = np.sqrt(np.exp(2 * (ada.CONTRAST_STD * np.log(2))**2))  # E[(2^N(0, s^2))^2]^(1/2)
  assert out[..., 0].std() == pytest.approx(spread * ada.BRIGHTNESS_STD, rel=0.1)


def test_the_ada_policy_in_the_augmentation_chain():
  """'ada' stands for both augmentations, which take p themselves: a traced p of 0 leaves
  every image as it was, p = 1 changes them, the gradient reaches the pixels; the colour
  maps need RGB."""
  assert augment.parse_policy("flip, ada") == ["flip", "ada_geometric", "ada_color"]
  with pytest.raises(ValueError, match="augmentation listed twice"):
    augment.parse_policy("ada,ada_color")
  fn = augment.make_augment("ada", 0.5)
  x, key = images(), jax.random.PRNGKey(4)
  np.testing.assert_array_equal(jax.jit(fn)(key, x, jnp.float32(0.0)), x)
  assert not np.allclose(fn(key, x, jnp.float32(1.0)), x)
  np.testing.assert_array_equal(fn(key, x), fn(key, x))
  weights = images(seed=5)
  grad = jax.grad(lambda x: jnp.sum(weights * fn(key, x, jnp.float32(1.0))))(x)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0
  with pytest.raises(ValueError, match="ada_color transforms RGB images; got 1 channels"):
    augment.make_augment("ada_color")(key, images(channels=1))


def test_a_penalty_through_the_pipeline_has_a_parameter_gradient():
  """R1 through the augmentation (augment.penalty_grad=through, R3GAN's and ADA's) needs the
  pixels' gradient of D(T(x)) and then its gradient w.r.t. D's weights: for a toy D,
  (w . T(x))^2, that second-order gradient matches central differences of the penalty."""
  fn = augment.make_augment("ada", 1.0)
  x, key = images(n=2, size=6), jax.random.PRNGKey(6)
  w = jax.random.normal(jax.random.PRNGKey(7), x.shape[1:])

  def r1(w):
    d = lambda x: jnp.sum(jnp.einsum("nhwc,hwc->n", fn(key, x), w)**2)
    return 0.5 * jnp.sum(jnp.square(jax.grad(d)(x)))

  grad = jax.grad(r1)(w)
  direction = jax.random.normal(jax.random.PRNGKey(8), w.shape)
  eps = 1e-3
  numeric = (r1(w + eps * direction) - r1(w - eps * direction)) / (2 * eps)
  assert float(jnp.abs(grad).sum()) > 0
  np.testing.assert_allclose(jnp.vdot(grad, direction), numeric, rtol=2e-2)
