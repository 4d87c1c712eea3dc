"""Memorisation and mode-collapse measures on images whose answers are known by construction."""

import numpy as np
import pytest

from gan_jax.metrics import collapse


def random_images(n, size=32, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_pixel_features_average_blocks_and_weigh_gray_channels():
  image = np.zeros((1, 64, 64, 3), np.uint8)
  image[0, :2, :2] = [255, 0, 0]   # one 2x2 block pure red
  image[0, 2:4, :2, 1] = 255       # one block pure green, top-left half of the next block row
  rgb = collapse.pixel_features(image).reshape(32, 32, 3)
  np.testing.assert_allclose(rgb[0, 0], [1, 0, 0])
  np.testing.assert_allclose(rgb[1, 0], [0, 1, 0])
  gray = collapse.pixel_features(image, grayscale=True).reshape(32, 32)
  np.testing.assert_allclose([gray[0, 0], gray[1, 0]], [0.299, 0.587], rtol=1e-6)
  assert collapse.pixel_features(random_images(2, size=16)).shape == (2, 32 * 32 * 3)
  with pytest.raises(ValueError, match="N, H, W, 3"):
    collapse.pixel_features(np.zeros((2, 32, 32), np.uint8))


def test_a_mirrored_training_image_is_found_with_distance_zero():
  train = random_images(20)
  query = collapse.flip(train[[7]])
  d, index, flipped = collapse.nearest_flip_aware(
      collapse.pixel_features(query), collapse.pixel_features(collapse.flip(query)),
      collapse.pixel_features(train))
  assert index[0] == 7 and flipped[0] and d[0] == pytest.approx(0, abs=1e-3)


def test_memorisation_ratio_and_copy_rate():
  rng = np.random.default_rng(0)
  heldout = rng.uniform(1, 2, 1000)
  copies = collapse.memorisation(np.zeros(100), heldout)
  assert copies["ratio"] == 0 and copies["copy_rate"] == 1
  fresh = collapse.memorisation(rng.uniform(1, 2, 1000), heldout)
  assert fresh["ratio"] == pytest.approx(1, abs=0.05)
  assert fresh["copy_rate"] == pytest.approx(0.01, abs=0.01)
  assert copies["heldout_to_train"] == pytest.approx(np.median(heldout))


def test_a_collapsed_generator_is_all_duplicates_and_has_no_diversity():
  real = random_images(64, seed=1)
  collapsed = np.repeat(real[:1], 64, axis=0)
  out = collapse.duplicates_and_diversity(collapsed, real)
  assert out["dup_rate"] == 1 and out["diversity"] == 0 and out["diversity_ratio"] == 0
  assert out["dup_rate_real"] == 0 and out["diversity_real"] > 0.2  # uniform noise is far apart
  same = collapse.duplicates_and_diversity(real, real)
  assert same["diversity_ratio"] == 1 and same["dup_rate"] == same["dup_rate_real"]


def test_colour_variants_are_duplicates_but_mirror_images_are_not():
  base = random_images(8, seed=2)
  # The same faces in another colour: identical grayscale structure up to a small shift.
  recoloured = np.clip(base.astype(int) + [6, -6, 0], 0, 255).astype(np.uint8)
  real = random_images(16, seed=3)
  assert collapse.duplicates_and_diversity(np.concatenate([base, recoloured]), real)[
      "dup_rate"] == 1
  assert collapse.duplicates_and_diversity(np.concatenate([base, collapse.flip(base)]), real)[
      "dup_rate"] == 0


def test_feature_duplicates_are_calibrated_on_real_data():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(500, 8))
  assert collapse.feature_duplicate_rate(real, real)["dup_rate"] == pytest.approx(0.01, abs=0.005)
  tight = np.repeat(real[:5], 100, axis=0) + rng.normal(scale=1e-3, size=(500, 8))
  out = collapse.feature_duplicate_rate(tight, real)
  assert out["dup_rate"] == 1 and out["diversity_ratio"] < 0.01


def test_nearest_pairs_picture_shows_sample_then_its_match():
  train = random_images(4, size=8)
  picture = collapse.nearest_pairs_picture(train[:2], train, np.array([1, 2]),
                                           np.array([False, True]))
  assert picture.shape == (12, 82, 3)  # one row of 8 tiles (4 used), 2 px padding
  np.testing.assert_array_equal(picture[2:10, 2:10], train[0])
  np.testing.assert_array_equal(picture[2:10, 12:20], train[1])
  np.testing.assert_array_equal(picture[2:10, 32:40], train[2][:, ::-1])
