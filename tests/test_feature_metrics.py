"""Feature-set metrics and k-NN utilities against closed forms and brute-force references."""

import json

import numpy as np
import pytest
import scipy.linalg
import scipy.special

from gan_jax.metrics import feature_metrics as fm
from gan_jax.metrics import neighbours


def brute_distances(a, b):
  """Euclidean distances by explicit differences (no expansion)."""
  return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def brute_radii(x, k):
  """Distance from each point to its k-th nearest other point, by sorting each row."""
  d = brute_distances(x, x)
  return np.array([np.sort(np.delete(row, i))[k - 1] for i, row in enumerate(d)])


def closed_form_fid(mu1, s1, mu2, s2):
  """The textbook formula with scipy's general (non-symmetric) matrix square root."""
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_covariance(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


# --- neighbours -------------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [3, 7, 2048])
def test_pairwise_sq_distances_match_brute_force(block_size):
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(23, 6)), rng.normal(size=(17, 6))
  np.testing.assert_allclose(neighbours.pairwise_sq_distances(a, b, block_size=block_size),
                             brute_distances(a, b) ** 2, rtol=1e-10, atol=1e-12)
  same = neighbours.pairwise_sq_distances(a * 1e3, a * 1e3, block_size=block_size)
  assert np.all(same >= 0)
  assert np.max(np.abs(np.diag(same))) < 1e-6 * np.max(same)


@pytest.mark.parametrize("block_size", [2, 5, 2048])
@pytest.mark.parametrize("k", [1, 3])
def test_nearest_matches_brute_force(block_size, k):
  rng = np.random.default_rng(1)
  q, r = rng.normal(size=(19, 4)), rng.normal(size=(13, 4))
  d = brute_distances(q, r)
  distances, indices = neighbours.nearest(q, r, k=k, block_size=block_size)
  order = np.argsort(d, axis=1)[:, :k]
  np.testing.assert_array_equal(indices, order)
  np.testing.assert_allclose(distances, np.take_along_axis(d, order, axis=1), rtol=1e-10)


@pytest.mark.parametrize("block_size", [2, 5, 2048])
def test_nearest_exclude_self_and_radii(block_size):
  rng = np.random.default_rng(2)
  x = rng.normal(size=(21, 3))
  d = brute_distances(x, x)
  np.fill_diagonal(d, np.inf)
  distances, indices = neighbours.nearest(x, x, k=4, exclude_self=True, block_size=block_size)
  np.testing.assert_array_equal(indices, np.argsort(d, axis=1)[:, :4])
  assert not np.any(indices == np.arange(21)[:, None])
  for k in (1, 4, 20):
    np.testing.assert_allclose(neighbours.kth_neighbour_radii(x, k, block_size=block_size),
                               brute_radii(x, k), rtol=1e-10)


def test_duplicates_are_neighbours_at_distance_zero():
  x = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
  np.testing.assert_allclose(neighbours.kth_neighbour_radii(x, 1), [0.0, 0.0, 5.0], atol=1e-12)


@pytest.mark.parametrize("block_size", [3, 2048])
def test_count_in_balls_matches_brute_force(block_size):
  rng = np.random.default_rng(3)
  points, centres = rng.normal(size=(30, 5)), rng.normal(size=(11, 5))
  radii = rng.uniform(1.0, 3.0, size=11)
  expected = (brute_distances(points, centres) <= radii[None]).sum(axis=1)
  np.testing.assert_array_equal(neighbours.count_in_balls(points, centres, radii, block_size), expected)


def test_float32_path_agrees():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(40, 16))
  np.testing.assert_allclose(neighbours.kth_neighbour_radii(x, 3, dtype=np.float32),
                             brute_radii(x, 3), rtol=1e-4)


def test_neighbour_errors():
  x = np.zeros((5, 2))
  with pytest.raises(ValueError, match="k must be"):
    neighbours.nearest(x, x, k=5, exclude_self=True)
  with pytest.raises(ValueError, match="same set"):
    neighbours.nearest(x, x[:4], exclude_self=True)
  with pytest.raises(ValueError, match="feature sizes"):
    neighbours.nearest(x, np.zeros((5, 3)))
  with pytest.raises(ValueError, match="NaN"):
    neighbours.nearest(np.full((2, 2), np.nan), x)


# --- FID --------------------------------------------------------------------------------------


def test_fid_of_identical_sets_is_zero():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(500, 32)) * 10 + 3
  scale = np.trace(np.cov(x, rowvar=False))
  assert fm.fid(x, x) < 1e-6 * scale
  assert fm.fid(x, x[::-1]) < 1e-6 * scale


def test_frechet_distance_diagonal_closed_form():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
  assert fm.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_non_commuting_closed_form():
  rng = np.random.default_rng(6)
  d = 8
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
  assert not np.allclose(s1 @ s2, s2 @ s1)
  expected = closed_form_fid(mu1, s1, mu2, s2)
  assert fm.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
  # Symmetric, and from samples the estimate approaches the population value.
  assert fm.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)
  n = 200_000
  real = rng.multivariate_normal(mu1, s1, size=n)
  fake = rng.multivariate_normal(mu2, s2, size=n)
  assert fm.fid(real, fake) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_symmetric_nonnegative_and_singular():
  rng = np.random.default_rng(7)
  for n, d in ((10, 32), (3, 64), (200, 16)):
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5
    mu1, s1 = fm.feature_statistics(a)
    mu2, s2 = fm.feature_statistics(b)
    ab, ba = fm.frechet_distance(mu1, s1, mu2, s2), fm.frechet_distance(mu2, s2, mu1, s1)
    assert np.isfinite(ab) and ab >= 0
    assert ab == pytest.approx(ba, rel=1e-8)
    assert 0 <= fm.fid(a, a) < 1e-6 * np.trace(s1)
  zero = np.zeros((4, 4))
  assert fm.frechet_distance(np.zeros(4), zero, np.ones(4), zero) == pytest.approx(4.0)


def test_fid_errors():
  with pytest.raises(ValueError, match="feature sizes"):
    fm.fid(np.zeros((5, 3)), np.zeros((5, 4)))
  with pytest.raises(ValueError, match="at least 2"):
    fm.fid(np.zeros((1, 3)), np.zeros((5, 3)))
  with pytest.raises(ValueError, match="shape"):
    fm.frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))


# --- KID --------------------------------------------------------------------------------------


def reference_mmd2(x, y):
  """Unbiased MMD^2 with the cubic kernel, one pair at a time."""
  m, d = x.shape
  kernel = lambda a, b: (np.dot(a, b) / d + 1) ** 3
  xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
  return xx + yy - 2 * xy


def test_kid_with_one_whole_subset_is_the_unbiased_mmd():
  rng = np.random.default_rng(8)
  x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.3
  result = fm.kid(x, y, num_subsets=1, subset_size=1000)
  assert result["kid"] == pytest.approx(reference_mmd2(x, y), rel=1e-10)
  assert result["kid_std"] == 0.0


def test_kid_same_distribution_near_zero_and_shift_positive():
  rng = np.random.default_rng(9)
  real, same, shifted = (rng.normal(size=(1000, 16)) for _ in range(3))
  shifted += 1.0
  kid_same = fm.kid(real, same, num_subsets=20, subset_size=500)
  kid_shift = fm.kid(real, shifted, num_subsets=20, subset_size=500)
  assert abs(kid_same["kid"]) < 3 * kid_same["kid_std"] + 1e-3
  assert kid_shift["kid"] > 0.1 and kid_shift["kid"] > 100 * abs(kid_same["kid"])


def test_kid_randomness_comes_from_the_seed():
  rng = np.random.default_rng(10)
  x, y = rng.normal(size=(50, 4)), rng.normal(size=(40, 4))
  a = fm.kid(x, y, num_subsets=5, subset_size=20, seed=3)
  assert a == fm.kid(x, y, num_subsets=5, subset_size=20, seed=3)
  assert a != fm.kid(x, y, num_subsets=5, subset_size=20, seed=4)
  fm.kid(x, y, num_subsets=2)  # subset_size capped at 40


# --- Inception score --------------------------------------------------------------------------


def test_inception_score_uniform_is_one():
  result = fm.inception_score(np.zeros((100, 1000)), splits=10)
  assert result["is"] == pytest.approx(1.0, abs=1e-12)
  assert result["is_std"] == pytest.approx(0.0, abs=1e-12)


def test_inception_score_diverse_one_hot_is_number_of_classes():
  classes = 10
  labels = np.arange(200) % classes
  confident = np.where(np.eye(classes)[labels] > 0, 1e4, 0.0)
  assert fm.inception_score(confident, splits=5)["is"] == pytest.approx(classes, rel=1e-12)
  hard = np.where(np.eye(classes)[labels] > 0, 0.0, -np.inf)
  assert fm.inception_score(hard, splits=5)["is"] == pytest.approx(classes, rel=1e-12)
  # All images the same class: no diversity, IS = 1.
  assert fm.inception_score(confident[labels == 3], splits=2)["is"] == pytest.approx(1.0)


def test_inception_score_matches_naive_formula():
  rng = np.random.default_rng(11)
  logits = rng.normal(size=(60, 7)) * 3
  p = scipy.special.softmax(logits, axis=1)
  scores = []
  for part in np.array_split(p, 3):
    py = part.mean(axis=0)
    scores.append(np.exp(np.mean([np.sum(row * np.log(row / py)) for row in part])))
  result = fm.inception_score(logits + 1e3, splits=3)  # shift-invariant, no overflow
  assert result["is"] == pytest.approx(np.mean(scores), rel=1e-10)
  assert result["is_std"] == pytest.approx(np.std(scores), rel=1e-8)
  with pytest.raises(ValueError, match="splits"):
    fm.inception_score(logits, splits=61)


# --- precision/recall, density/coverage -------------------------------------------------------


def reference_precision_recall(real, fake, k):
  real_radii, fake_radii = brute_radii(real, k), brute_radii(fake, k)
  d = brute_distances(real, fake)  # (n_real, n_fake)
  precision = np.mean([any(d[i, j] <= real_radii[i] for i in range(len(real))) for j in range(len(fake))])
  recall = np.mean([any(d[i, j] <= fake_radii[j] for j in range(len(fake))) for i in range(len(real))])
  return precision, recall


def reference_density_coverage(real, fake, k):
  real_radii = brute_radii(real, k)
  d = brute_distances(real, fake)
  inside = d <= real_radii[:, None]
  return inside.sum() / (k * len(fake)), np.mean(inside.any(axis=1))


@pytest.mark.parametrize("block_size", [4, 2048])
def test_precision_recall_density_coverage_match_brute_force(block_size):
  rng = np.random.default_rng(12)
  real = rng.normal(size=(60, 8))
  fake = rng.normal(size=(45, 8)) * 0.8 + 0.6
  for k in (1, 3, 5):
    precision, recall = reference_precision_recall(real, fake, k)
    assert fm.precision_recall(real, fake, k=k, block_size=block_size) == {
        "precision": precision, "recall": recall}
    density, coverage = reference_density_coverage(real, fake, k)
    assert fm.density_coverage(real, fake, k=k, block_size=block_size) == {
        "density": density, "coverage": coverage}
    assert 0 < precision < 1 and 0 < recall < 1 and 0 < coverage < 1  # not a trivial case


def test_precision_recall_coverage_invariants():
  rng = np.random.default_rng(13)
  real = rng.normal(size=(80, 6))
  pr = fm.precision_recall(real, real.copy())
  dc = fm.density_coverage(real, real.copy())
  assert pr == {"precision": 1.0, "recall": 1.0}
  assert dc["coverage"] == 1.0 and dc["density"] >= 1.0  # each point in k + 1 balls or more
  far = fm.precision_recall(real, real + 100.0)
  assert far == {"precision": 0.0, "recall": 0.0}
  assert fm.density_coverage(real, real + 100.0) == {"density": 0.0, "coverage": 0.0}
  with pytest.raises(ValueError, match="at least 4"):
    fm.precision_recall(real[:3], real)


# --- protocol ---------------------------------------------------------------------------------


def test_with_protocol_is_json_serialisable():
  result = fm.with_protocol({"fid": np.float64(12.5), **fm.kid(np.eye(4), np.eye(4) + 1, num_subsets=2)},
                            feature_network="inception_v3_pool3", resize="299 bilinear",
                            n_real=np.int64(50_000), n_fake=10_000, split="test",
                            kid_num_subsets=100, kid_subset_size=1000)
  assert json.loads(json.dumps(result)) == result
  assert result["fid"] == 12.5 and result["protocol"]["n_real"] == 50_000
  with pytest.raises(TypeError):
    fm.with_protocol({"fid": 1.0}, feature_network=object())
