"""Memorisation and mode collapse: nearest training images, near-duplicates, diversity.

Two spaces are used. Pixel space: images area-downsampled to 32x32 and
scaled to [0, 1] (RGB for memorisation; grayscale for duplicates and
diversity, so colour-only variants of one face count as the same face).
Distances there are RMS per pixel, so 0.1 means "a tenth of the full range
on average". Feature space: any (N, D) features (the anime tag classifier's
by default, see gan_jax/metrics/evaluator.py).

Memorisation compares each generated sample's distance to its nearest
training image with the same distance for held-out real images: a generator
that copies its training set sits much closer to it than unseen real data
does. Those searches are flip-aware (a mirrored copy of a training image
counts as a copy); duplicates within a set of samples are not (see
duplicates_and_diversity).
"""

from typing import Dict, Tuple

import numpy as np

from gan_jax.metrics import neighbours

PIXEL_SIZE = 32  # pixel-space comparisons downsample to this
# RMS grayscale distance below which two images count as near-duplicates:
# random sets of 1,024-1,624 real anime faces have 0.2-0.9% such images.
DUPLICATE_THRESHOLD = 0.1
_GRAY = np.array([0.299, 0.587, 0.114], np.float32)


def pixel_features(images: np.ndarray, size: int = PIXEL_SIZE, grayscale: bool = False) -> np.ndarray:
  """(N, size*size[*3]) float32 in [0, 1]: uint8 NHWC images brought to size x size.

  Sizes that are multiples of `size` are area-averaged (64 -> 32: 2x2 means);
  other sizes are resized with antialiased linear interpolation.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"expected uint8 images (N, H, W, 3), got shape {images.shape}")
  n, h, w, _ = images.shape
  x = images.astype(np.float32) / 255.0
  if grayscale:
    x = (x @ _GRAY)[..., None]
  if h % size == 0 and w % size == 0:
    x = x.reshape(n, size, h // size, size, w // size, x.shape[-1]).mean(axis=(2, 4))
  else:
    import jax  # pylint: disable=g-import-not-at-top
    x = np.asarray(jax.image.resize(x, (n, size, size, x.shape[-1]), "linear", antialias=True))
  return x.reshape(n, -1)


def flip(images: np.ndarray) -> np.ndarray:
  """Images mirrored left-right (NHWC)."""
  return np.asarray(images)[:, :, ::-1]


def nearest_flip_aware(queries: np.ndarray, queries_flipped: np.ndarray,
                       references: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(distance, index, flipped): each query's nearest reference, allowing a mirrored query.

  `queries_flipped` are the features of the mirrored queries (for pixels:
  pixel_features(flip(images))). `flipped[i]` says the mirrored query matched.
  """
  d, i = neighbours.nearest(queries, references, k=1)
  df, i_f = neighbours.nearest(queries_flipped, references, k=1)
  d, i, df, i_f = d[:, 0], i[:, 0], df[:, 0], i_f[:, 0]
  flipped = df < d
  return np.where(flipped, df, d), np.where(flipped, i_f, i), flipped


def rms(distances: np.ndarray, dim: int) -> np.ndarray:
  """Euclidean distances in a `dim`-dimensional pixel space -> RMS per pixel."""
  return np.asarray(distances) / np.sqrt(dim)


def memorisation(fake_to_train: np.ndarray, heldout_to_train: np.ndarray,
                 copy_quantile: float = 0.01) -> Dict[str, float]:
  """How close samples sit to the training set, relative to held-out real data.

  ratio: median(fake -> nearest train) / median(held-out -> nearest train);
  well below 1 means the generator reproduces training images. copy_rate:
  the fraction of samples closer to the training set than all but
  `copy_quantile` of held-out images are (held-out scores `copy_quantile`).
  """
  fake_to_train = np.asarray(fake_to_train, np.float64)
  heldout_to_train = np.asarray(heldout_to_train, np.float64)
  if not len(fake_to_train) or not len(heldout_to_train):
    raise ValueError("memorisation needs at least one sample and one held-out image")
  threshold = np.quantile(heldout_to_train, copy_quantile)
  median_fake, median_heldout = np.median(fake_to_train), np.median(heldout_to_train)
  return {"fake_to_train": float(median_fake), "heldout_to_train": float(median_heldout),
          "ratio": float(median_fake / max(median_heldout, 1e-12)),
          "copy_rate": float(np.mean(fake_to_train < threshold))}


def within_set_distances(features: np.ndarray) -> np.ndarray:
  """Each sample's distance to its nearest OTHER sample of the same set."""
  d, _ = neighbours.nearest(features, features, k=1, exclude_self=True)
  return d[:, 0]


def pixel_within_distances(images: np.ndarray) -> np.ndarray:
  """Each image's RMS distance, in grayscale 32x32 pixels, to its nearest other image of
  the set."""
  features = pixel_features(np.asarray(images), grayscale=True)
  return rms(within_set_distances(features), features.shape[1])


def duplicate_stats(fake_distances: np.ndarray, real_distances: np.ndarray,
                    threshold: float = DUPLICATE_THRESHOLD) -> Dict[str, float]:
  """duplicates_and_diversity from the two sets' nearest-other-image distances
  (pixel_within_distances)."""
  out = {}
  for name, d in (("", fake_distances), ("_real", real_distances)):
    out["dup_rate" + name] = float(np.mean(d < threshold))
    out["diversity" + name] = float(np.median(d))
  out["diversity_ratio"] = out["diversity"] / max(out["diversity_real"], 1e-12)
  return out


def duplicates_and_diversity(fake_images: np.ndarray, real_images: np.ndarray,
                             threshold: float = DUPLICATE_THRESHOLD) -> Dict[str, float]:
  """Near-duplicate rate and within-set diversity of samples, next to real images'.

  In grayscale 32x32 pixel space (RMS distance): dup_rate is the fraction of
  samples with another sample within `threshold`; diversity is the median
  nearest-other-sample distance; diversity_ratio divides it by the same for
  an equally large set of real images (1.0: as diverse as the data; a
  collapsed generator tends to 0). Mirror images are not duplicates here (the
  anime faces themselves hold many mirrored pairs: counted flip-aware, 2-7%
  of real faces would be "duplicates" instead of 0.4-0.9%).
  """
  n = min(len(fake_images), len(real_images))
  if n < 2:
    raise ValueError("duplicates and diversity need at least 2 samples and 2 real images")
  return duplicate_stats(pixel_within_distances(np.asarray(fake_images)[:n]),
                         pixel_within_distances(np.asarray(real_images)[:n]), threshold)


def feature_duplicate_stats(fake_distances: np.ndarray, real_distances: np.ndarray,
                            quantile: float = 0.01) -> Dict[str, float]:
  """feature_duplicate_rate from the two sets' nearest-other-sample feature distances
  (within_set_distances)."""
  threshold = np.quantile(real_distances, quantile)
  return {"dup_rate": float(np.mean(fake_distances < threshold)),
          "diversity_ratio": float(np.median(fake_distances)
                                   / max(np.median(real_distances), 1e-12))}


def feature_duplicate_rate(fake_features: np.ndarray, real_features: np.ndarray,
                           quantile: float = 0.01) -> Dict[str, float]:
  """Near-duplicates in a feature space, calibrated on real data.

  The threshold is the `quantile` of real images' nearest-other-image
  distances (with as many real images as samples), so real data scores
  `quantile` by construction and a collapsing generator scores far more.
  """
  n = min(len(fake_features), len(real_features))
  if n < 2:
    raise ValueError("feature duplicates need at least 2 samples and 2 real images")
  return feature_duplicate_stats(within_set_distances(np.asarray(fake_features)[:n]),
                                 within_set_distances(np.asarray(real_features)[:n]), quantile)


def nearest_pairs_picture(samples: np.ndarray, train_images: np.ndarray, index: np.ndarray,
                          flipped: np.ndarray, num: int = 32) -> np.ndarray:
  """A grid of (sample | its nearest training image, mirrored when that matched) pairs."""
  from gan_jax import writers  # pylint: disable=g-import-not-at-top
  num = min(num, len(samples))
  pairs = []
  for i in range(num):
    match = train_images[index[i]]
    pairs += [samples[i], match[:, ::-1] if flipped[i] else match]
  return writers.make_grid(np.stack(pairs), columns=8)
