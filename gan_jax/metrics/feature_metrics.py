"""Distances between image sets from their feature arrays (numpy, float64).

Each metric takes (N, D) features of real and generated images (from whatever
feature network; Inception pool3 for the standard FID/KID/PR numbers) or,
for the Inception score, the classifier's logits. The numbers depend on the
protocol as much as on the images (feature network, resize, sample sizes,
which real split), so results are stored with it: see `with_protocol`.

  fid                 Frechet distance between Gaussians fitted to the features
  kid                 unbiased MMD^2, cubic polynomial kernel, over random subsets
  inception_score     exp E[KL(p(y|x) || p(y))] from classifier logits
  precision_recall    k-NN manifold precision/recall (Kynkaanniemi et al. 2019)
  density_coverage    density/coverage (Naeem et al. 2020)
"""

import json
import math
from typing import Any, Dict, Tuple

import numpy as np

from gan_jax.metrics import neighbours

# The protocol fields results carry (with_protocol accepts any JSON value for each).
PROTOCOL_FIELDS = ("feature_network", "resize", "n_real", "n_fake", "split",
                   "kid_num_subsets", "kid_subset_size", "k")


def _as_features(x, name: str, min_points: int = 1) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"{name} must be (num_images, num_features), got shape {x.shape}")
  if x.shape[0] < min_points:
    raise ValueError(f"{name} needs at least {min_points} rows, got {x.shape[0]}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} has NaN or Inf entries")
  return x


def _check_pair(real: np.ndarray, fake: np.ndarray) -> None:
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real and fake feature sizes differ: {real.shape[1]} vs {fake.shape[1]}")


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix (negative rounding eigenvalues -> 0)."""
  eigenvalues, vectors = np.linalg.eigh(sigma)
  return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2): the Frechet (2-Wasserstein^2) distance of two Gaussians.

  tr (S1 S2)^1/2 is the sum of square roots of the eigenvalues of the
  symmetric PSD matrix S1^1/2 S2 S1^1/2 (same spectrum as S1 S2), so no
  non-symmetric square root (and no complex rounding) is needed; tiny negative
  eigenvalues from rounding are clipped to 0, which keeps singular covariances
  (fewer samples than features) finite. The result is clipped at 0.
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  d = mu1.shape[0] if mu1.ndim == 1 else -1
  for name, value, shape in (("mu1", mu1, (d,)), ("mu2", mu2, (d,)),
                             ("sigma1", sigma1, (d, d)), ("sigma2", sigma2, (d, d))):
    if value.shape != shape:
      raise ValueError(f"{name} has shape {value.shape}, expected {shape} (mu1 has {mu1.shape})")
    if not np.all(np.isfinite(value)):
      raise ValueError(f"{name} has NaN or Inf entries")
  sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
  root1 = _psd_sqrt(sigma1)
  middle = root1 @ sigma2 @ root1
  eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
  trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues, 0, None)))
  diff = mu1 - mu2
  value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
  return float(max(value, 0.0))


def feature_statistics(features) -> Tuple[np.ndarray, np.ndarray]:
  """(mean (D,), covariance (D, D) with the n - 1 normalisation) of (N, D) features."""
  features = _as_features(features, "features", min_points=2)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def fid(real_features, fake_features) -> float:
  """Frechet Inception Distance: frechet_distance of the two feature sets' mean and covariance."""
  real = _as_features(real_features, "real_features", min_points=2)
  fake = _as_features(fake_features, "fake_features", min_points=2)
  _check_pair(real, fake)
  return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 of x, y (m rows each) under k(a, b) = (a.b / d + 1)^3."""
  m, d = x.shape
  k_xx = (x @ x.T / d + 1) ** 3
  k_yy = (y @ y.T / d + 1) ** 3
  k_xy = (x @ y.T / d + 1) ** 3
  within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return float(within - 2 * k_xy.mean())


def kid(real, fake, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> Dict[str, float]:
  """Kernel Inception Distance: {'kid': mean, 'kid_std': std} of the unbiased MMD^2 over subsets.

  Kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018). Each of
  `num_subsets` rounds draws `subset_size` rows of each set without
  replacement (capped at the smaller set), from numpy's default_rng(seed)
  alone. The unbiased estimate can be slightly negative for equal
  distributions. kid_std is the spread over subsets (not a standard error).
  """
  real = _as_features(real, "real", min_points=2)
  fake = _as_features(fake, "fake", min_points=2)
  _check_pair(real, fake)
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be at least 1, got {num_subsets}")
  m = min(subset_size, real.shape[0], fake.shape[0])
  if m < 2:
    raise ValueError(f"subset_size must be at least 2, got {subset_size}")
  rng = np.random.default_rng(seed)
  values = []
  for _ in range(num_subsets):
    x = real[rng.choice(real.shape[0], m, replace=False)]
    y = fake[rng.choice(fake.shape[0], m, replace=False)]
    values.append(_unbiased_mmd2(x, y))
  return {"kid": float(np.mean(values)), "kid_std": float(np.std(values))}


def inception_score(logits, splits: int = 10) -> Dict[str, float]:
  """Inception score: {'is': mean, 'is_std': std} over `splits` of exp E_x[KL(p(y|x) || p(y))].

  `logits` are (N, classes) classifier outputs (the softmax is taken here, via
  a stable log-softmax); each split is a contiguous slice and p(y) its mean
  prediction. IS is high when each image is confidently one ImageNet class
  and the classes are diverse, so it suits class-diverse data: for a single
  domain such as anime faces (all "one class" to ImageNet) it says little.
  The result lies in [1, number of classes].
  """
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2:
    raise ValueError(f"logits must be (num_images, num_classes), got shape {logits.shape}")
  if np.any(np.isnan(logits)) or np.any(logits == np.inf):
    raise ValueError("logits have NaN or +Inf entries")
  if not 1 <= splits <= logits.shape[0]:
    raise ValueError(f"splits must be in [1, {logits.shape[0]}] for {logits.shape[0]} images, got {splits}")
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
  p = np.exp(log_p)
  scores = []
  for part_p, part_log_p in zip(np.array_split(p, splits), np.array_split(log_p, splits)):
    with np.errstate(divide="ignore", invalid="ignore"):  # p = 0 terms (-inf logits) are dropped.
      log_marginal = np.log(part_p.mean(axis=0))
      terms = np.where(part_p > 0, part_p * (part_log_p - log_marginal), 0.0)
    scores.append(math.exp(terms.sum(axis=1).mean()))
  return {"is": float(np.mean(scores)), "is_std": float(np.std(scores))}


def precision_recall(real, fake, k: int = 3, block_size: int = neighbours.DEFAULT_BLOCK_SIZE
                     ) -> Dict[str, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019): {'precision', 'recall'}.

  Each set's manifold is the union of closed balls around its points with
  radius the distance to the k-th nearest other point of the set. Precision
  is the fraction of fake points inside the real manifold; recall the
  fraction of real points inside the fake manifold.
  """
  real = _as_features(real, "real", min_points=k + 1)
  fake = _as_features(fake, "fake", min_points=k + 1)
  _check_pair(real, fake)
  real_radii = neighbours.kth_neighbour_radii(real, k, block_size)
  fake_radii = neighbours.kth_neighbour_radii(fake, k, block_size)
  precision = np.mean(neighbours.count_in_balls(fake, real, real_radii, block_size) > 0)
  recall = np.mean(neighbours.count_in_balls(real, fake, fake_radii, block_size) > 0)
  return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, k: int = 5, block_size: int = neighbours.DEFAULT_BLOCK_SIZE
                     ) -> Dict[str, float]:
  """Density and coverage (Naeem et al. 2020): {'density', 'coverage'}.

  With B_i the closed ball around real point i of radius its distance to its
  k-th nearest other real point: density = (1 / kM) sum over the M fake
  points of the number of balls containing it (about 1 when fake matches
  real, above 1 where fakes crowd dense regions); coverage = fraction of real
  points whose ball contains at least one fake point.
  """
  real = _as_features(real, "real", min_points=k + 1)
  fake = _as_features(fake, "fake", min_points=1)
  _check_pair(real, fake)
  real_radii = neighbours.kth_neighbour_radii(real, k, block_size)
  counts = neighbours.count_in_balls(fake, real, real_radii, block_size)
  nearest_fake, _ = neighbours.nearest(real, fake, k=1, block_size=block_size)
  return {"density": float(counts.sum() / (k * fake.shape[0])),
          "coverage": float(np.mean(nearest_fake[:, 0] <= real_radii))}


def _json_value(value: Any) -> Any:
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, dict):
    return {str(k): _json_value(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_value(v) for v in value]
  return value


def with_protocol(values: Dict[str, Any], **protocol: Any) -> Dict[str, Any]:
  """{**values, 'protocol': protocol} as plain JSON-serialisable Python values.

  The protocol names what the numbers depend on; the usual fields are
  PROTOCOL_FIELDS: feature_network (e.g. 'inception_v3_pool3'), resize (e.g.
  '299 bilinear'), n_real, n_fake, split (which real images), kid_num_subsets,
  kid_subset_size, k. Raises TypeError when something cannot be JSON-encoded.
  """
  if "protocol" in values:
    raise ValueError("values already has a 'protocol' entry")
  out = _json_value(dict(values))
  out["protocol"] = _json_value(protocol)
  json.dumps(out)  # Fails here, not when the result is written.
  return out
