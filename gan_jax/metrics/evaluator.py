"""Metrics by name over generated and real images, each result stored with its protocol.

  evaluator = Evaluator(options, train_images, heldout_images)
  report = evaluator(fake_images)   # {metric: {"values": {...}, "protocol": {...}}}
  scalars = flatten(report)         # {"eval/fd_anime": 12.3, ...} for metrics.jsonl

Every metric is one function `metric(ctx) -> (values, protocol)` in the
METRICS registry, where `ctx` gives the fake, train and held-out image sets
and their features (computed once per set and feature network, then reused;
real features survive across calls, so periodic evaluation pays for them
once). `options` is `config.eval` (configs/common.py documents each field).

| metric | values | features |
|---|---|---|
| fid, kid, is, pr, dc | FID; KID +- std; Inception score; precision/recall; density/coverage | Inception-v3 (FID weights) |
| fd_anime, kid_anime | Frechet distance / KID in the anime tag classifier's features | offline classifier |
| tags | hair/eye colour histograms of samples vs real: total variation, dropped colours | offline classifier |
| afd | fraction of samples in which the animeface detector finds a face | animeface |
| memorisation | nearest-train distances of samples vs held-out real (pixels and features) | both |
| duplicates | near-duplicate rate and diversity of samples vs as many real images | pixels, features |
| tag_hit_rate | conditional runs: how often the classifier sees the requested hair/eye colour | offline classifier |

Conditional runs pass the labels each sample was generated from (`fake_labels`)
and the real images' labels; metrics with `needs_labels` use them.
"""

import dataclasses
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.metrics import collapse
from gan_jax.registry import Registry

Values = Dict[str, float]
Protocol = Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Metric:
  """A named evaluation: fn(ctx) -> (values, protocol); `headline` is its value that
  `config.eval.best` ranks by, lower is better unless `higher_is_better`."""
  fn: Callable[["Context"], Tuple[Values, Protocol]]
  headline: str
  higher_is_better: bool = False
  needs_heldout: bool = False
  needs: Tuple[str, ...] = ()  # 'inception', 'classifier', 'animeface': checked up front
  needs_labels: bool = False  # measures a conditional generator (needs the samples' labels)
  label_sets: Tuple[str, ...] = ()  # the data.labels sets it can measure (() any)


METRICS: Registry[Metric] = Registry("metric")


def register(name: str, headline: Optional[str] = None, higher_is_better: bool = False,
             needs_heldout: bool = False, needs: Tuple[str, ...] = (),
             needs_labels: bool = False, label_sets: Tuple[str, ...] = ()):
  """Decorator registering fn(ctx) -> (values, protocol) as metric `name`."""
  def add(fn):
    METRICS.register(name)(Metric(fn, headline or name, higher_is_better, needs_heldout, needs,
                                  needs_labels, label_sets))
    return fn
  return add


def check_label_sets(names: Sequence[str], labels: str) -> None:
  """ConfigError if a metric of `names` measures only other label sets than config.data.labels
  `labels` (tag_hit_rate: the anime colours); unconditional runs are checked elsewhere."""
  wrong = [n for n in names if labels and METRICS.get(n).label_sets
           and labels not in METRICS.get(n).label_sets]
  if wrong:
    sets = sorted({s for n in wrong for s in METRICS.get(n).label_sets})
    raise ConfigError(f"config.eval.metrics: {', '.join(wrong)} measure {', '.join(sets)} "
                      f"labels, but config.data.labels is {labels!r}: drop them")


def parse_metrics(text: str) -> Tuple[str, ...]:
  """'fd_anime, kid_anime' -> ('fd_anime', 'kid_anime'); unknown names raise ValueError."""
  names = tuple(n.strip() for n in text.split(",") if n.strip())
  for name in names:
    METRICS.get(name)
  if len(set(names)) != len(names):
    raise ValueError(f"metric listed twice in {text!r}")
  return names


# ----------------------------------------------------------- feature networks --

class FeatureNetworks:
  """Feature extractors by name, each loaded on first use: 'inception' (pool features),
  'inception_logits', 'anime' (tag classifier features), 'anime_tags' (its predictions)."""

  def __init__(self, options):
    self._options = options
    self._inception = None
    self._classifier = None

  def check(self, needs) -> None:
    """Fails now, saying what to install or provide, if a needed network cannot be had
    (so a run stops at start-up, not at its first evaluation hours later)."""
    if "inception" in needs:
      from gan_jax.metrics import inception  # pylint: disable=g-import-not-at-top
      inception.resolve_weights(self._options.inception_path or None)
    if "classifier" in needs:
      self.classifier()
    if "animeface" in needs:
      from gan_jax.metrics import afd  # pylint: disable=g-import-not-at-top
      problem = afd.detector_problem()
      if problem:
        raise ConfigError(f"config.eval.metrics has afd, but {problem}")

  def _inception_fn(self):
    if self._inception is None:
      from gan_jax.metrics import inception  # pylint: disable=g-import-not-at-top
      params = inception.load_inception(self._options.inception_path or None)
      self._inception = inception.make_feature_fn(params, batch_size=self._options.batch_size)
    return self._inception

  def classifier(self):
    """The anime tag classifier (committed asset unless eval.classifier_path names another)."""
    if self._classifier is None:
      from gan_jax.metrics import tag_classifier  # pylint: disable=g-import-not-at-top
      self._classifier = tag_classifier.load_classifier(self._options.classifier_path or None)
    return self._classifier

  def compute(self, name: str, images: np.ndarray):
    """Features `name` of uint8 NHWC `images` (several names may be filled at once)."""
    if name in ("inception", "inception_logits"):
      out = self._inception_fn()(images)
      return {"inception": out["pool"], "inception_logits": out["logits"]}
    if name in ("anime", "anime_tags"):
      features, predictions = self.classifier().features_and_predict(images)
      return {"anime": features, "anime_tags": predictions}
    if name == "anime_flipped":
      return {"anime_flipped": self.classifier().features(collapse.flip(images))}
    raise ValueError(f"unknown feature network {name!r}")

  def protocol(self, name: str) -> str:
    """How features `name` are computed, for the protocol record."""
    if name.startswith("inception"):
      return ("Inception-v3 FID weights (pt_inception-2015-12-05), pool3 2048-d; "
              "bilinear resize to 299 as pytorch-fid")
    return "anime tag classifier (gan_jax/metrics/tag_classifier.py) penultimate features"


@dataclasses.dataclass
class ImageSet:
  """uint8 NHWC images with their features (and quantities derived from them, such as
  within-set distances), computed on first request."""
  name: str
  images: np.ndarray
  features: Dict[str, Any] = dataclasses.field(default_factory=dict)
  labels: Optional[np.ndarray] = None  # int (N, heads): conditional runs' class labels

  def __len__(self) -> int:
    return len(self.images)


class Context:
  """What a metric sees: the image sets, their features on demand, the options."""

  def __init__(self, fake: ImageSet, train: ImageSet, heldout: Optional[ImageSet],
               networks: FeatureNetworks, options, real_spec: str):
    self.fake, self.train, self.heldout = fake, train, heldout
    self.networks, self.options, self.real_spec = networks, options, real_spec

  def features(self, image_set: ImageSet, name: str):
    """Features `name` of `image_set`, computed once."""
    if name not in image_set.features:
      start = time.perf_counter()
      image_set.features.update(self.networks.compute(name, image_set.images))
      logging.info("eval: %s features of %d %s images in %.1fs", name, len(image_set),
                   image_set.name, time.perf_counter() - start)
    return image_set.features[name]

  def cached(self, image_set: ImageSet, name: str, compute: Callable[[], Any]):
    """compute(), kept with `image_set` under `name`: computed once for the real sets,
    which live as long as the Evaluator."""
    if name not in image_set.features:
      image_set.features[name] = compute()
    return image_set.features[name]

  def protocol(self, **extra) -> Protocol:
    """The record every number carries: what was compared with what, and how."""
    # real_spec names the source and split itself (evaluate.load_reference_sets): appending
    # a split here once recorded "... held-out X (test) (train split)".
    out = {"n_fake": len(self.fake), "n_real": len(self.train), "real": self.real_spec}
    out.update(extra)
    return out


# -------------------------------------------------------------------- metrics --

def _feature_metrics():
  from gan_jax.metrics import feature_metrics  # pylint: disable=g-import-not-at-top
  return feature_metrics


def _kid(ctx: Context, network: str, prefix: str) -> Tuple[Values, Protocol]:
  o = ctx.options
  out = _feature_metrics().kid(ctx.features(ctx.train, network), ctx.features(ctx.fake, network),
                               num_subsets=o.kid_subsets, subset_size=o.kid_subset_size,
                               seed=0)
  return ({prefix: out["kid"], prefix + "_std": out["kid_std"]},
          ctx.protocol(features=ctx.networks.protocol(network), subsets=o.kid_subsets,
                       subset_size=min(o.kid_subset_size, len(ctx.fake), len(ctx.train)),
                       kernel="(x.y/d + 1)^3, unbiased MMD^2"))


@register("fid", needs=("inception",))
def fid_metric(ctx: Context):
  """Frechet Inception Distance between samples and the training images."""
  value = _feature_metrics().fid(ctx.features(ctx.train, "inception"),
                                 ctx.features(ctx.fake, "inception"))
  return {"fid": value}, ctx.protocol(features=ctx.networks.protocol("inception"))


@register("kid", needs=("inception",))
def kid_metric(ctx: Context):
  """Kernel Inception Distance (mean and std over subsets)."""
  return _kid(ctx, "inception", "kid")


@register("is", higher_is_better=True, needs=("inception",))
def inception_score_metric(ctx: Context):
  """Inception score of the samples (meaningful for class-diverse data only)."""
  out = _feature_metrics().inception_score(ctx.features(ctx.fake, "inception_logits"),
                                           splits=ctx.options.is_splits)
  return {"is": out["is"], "is_std": out["is_std"]}, ctx.protocol(
      features="Inception-v3 FID weights, 1008 logits", splits=ctx.options.is_splits,
      note="IS scores ImageNet-class diversity; for one-domain data like anime faces "
           "it says little")


@register("pr", headline="precision", higher_is_better=True, needs=("inception",))
def precision_recall_metric(ctx: Context):
  """Improved precision and recall (k-NN manifolds) in Inception features."""
  k = ctx.options.pr_k
  out = _feature_metrics().precision_recall(ctx.features(ctx.train, "inception"),
                                            ctx.features(ctx.fake, "inception"), k=k)
  return dict(out), ctx.protocol(features=ctx.networks.protocol("inception"), k=k)


@register("dc", headline="coverage", higher_is_better=True, needs=("inception",))
def density_coverage_metric(ctx: Context):
  """Density and coverage (k-NN) in Inception features."""
  k = ctx.options.dc_k
  out = _feature_metrics().density_coverage(ctx.features(ctx.train, "inception"),
                                            ctx.features(ctx.fake, "inception"), k=k)
  return dict(out), ctx.protocol(features=ctx.networks.protocol("inception"), k=k)


@register("fd_anime", needs=("classifier",))
def fd_anime_metric(ctx: Context):
  """Frechet distance in the anime tag classifier's features (no downloaded weights)."""
  value = _feature_metrics().fid(ctx.features(ctx.train, "anime"), ctx.features(ctx.fake, "anime"))
  return {"fd_anime": value}, ctx.protocol(features=ctx.networks.protocol("anime"))


@register("kid_anime", needs=("classifier",))
def kid_anime_metric(ctx: Context):
  """KID in the anime tag classifier's features."""
  return _kid(ctx, "anime", "kid_anime")


@register("tags", headline="tags/hair_color_tv", needs=("classifier",))
def tags_metric(ctx: Context):
  """Hair/eye colour distribution of samples vs real faces (mode dropping by colour)."""
  from gan_jax.metrics import tag_classifier  # pylint: disable=g-import-not-at-top
  real = tag_classifier.colour_histograms(ctx.features(ctx.train, "anime_tags"))
  fake = tag_classifier.colour_histograms(ctx.features(ctx.fake, "anime_tags"))
  values, details = {}, {}
  for head, distance in tag_classifier.histogram_distance(real, fake).items():
    values[f"tags/{head}_tv"] = distance["total_variation"]
    values[f"tags/{head}_dropped"] = len(distance["dropped"])
    details[head] = {"dropped": list(distance["dropped"]),
                     "real_share": dict(zip(real[head]["classes"],
                                            np.round(real[head]["share"], 4).tolist())),
                     "fake_share": dict(zip(fake[head]["classes"],
                                            np.round(fake[head]["share"], 4).tolist()))}
  return values, ctx.protocol(
      features="anime tag classifier predictions: share of images whose most probable "
      "colour is each class; tv = total variation distance; dropped = colours with >= 1% of "
      "real images but < 0.1x that share of samples", details=details)


@register("afd", higher_is_better=True, needs=("animeface",))
def afd_metric(ctx: Context):
  """Anime-face detection rate of the samples (the homework's AFD)."""
  from gan_jax.metrics import afd  # pylint: disable=g-import-not-at-top
  n = min(ctx.options.afd_num, len(ctx.fake)) if ctx.options.afd_num > 0 else len(ctx.fake)
  result = afd.detection_rate(ctx.fake.images[:n])
  return {"afd": result["rate"]}, ctx.protocol(
      **{k: v for k, v in result.items() if k != "rate"})


def _nearest_train(ctx: Context, image_set: ImageSet, space: str):
  """(distance, index, flipped): each image's nearest training image in `space` ('pixels':
  RMS over RGB 32x32; 'anime': classifier features), flip-aware. Kept on the set, so the
  held-out images' (and the training pixels) are computed once per run, not per evaluation."""
  key = f"nearest_train_{space}"
  if key not in image_set.features:
    if space == "pixels":
      if "pixels" not in ctx.train.features:
        ctx.train.features["pixels"] = collapse.pixel_features(ctx.train.images)
      train = ctx.train.features["pixels"]
      d, index, flipped = collapse.nearest_flip_aware(
          collapse.pixel_features(image_set.images),
          collapse.pixel_features(collapse.flip(image_set.images)), train)
      d = collapse.rms(d, train.shape[1])
    else:
      d, index, flipped = collapse.nearest_flip_aware(
          ctx.features(image_set, "anime"), ctx.features(image_set, "anime_flipped"),
          ctx.features(ctx.train, "anime"))
    image_set.features[key] = (d, index, flipped)
  return image_set.features[key]


@register("memorisation", headline="mem/ratio_pixels", higher_is_better=True,
          needs_heldout=True, needs=("classifier",))
def memorisation_metric(ctx: Context):
  """Samples' nearest-training distances against held-out real images', in pixels and features."""
  values = {}
  for space in ("pixels", "anime"):
    out = collapse.memorisation(_nearest_train(ctx, ctx.fake, space)[0],
                                _nearest_train(ctx, ctx.heldout, space)[0])
    values.update({f"mem/{k}_{space}": v for k, v in out.items()})
  return values, ctx.protocol(
      n_heldout=len(ctx.heldout), pixels=f"RGB {collapse.PIXEL_SIZE}x{collapse.PIXEL_SIZE} "
      "RMS distance", features=ctx.networks.protocol("anime"), flip_aware=True,
      copy_rate="fraction of samples nearer to train than 99% of held-out images")


@register("duplicates", headline="dup_rate", needs=("classifier",))
def duplicates_metric(ctx: Context):
  """Near-duplicates and diversity of the samples next to as many real images."""
  n = min(len(ctx.fake), len(ctx.train))
  # A fixed random subset of the real images, as many as there are samples.
  index = np.sort(np.random.default_rng(0).choice(len(ctx.train), n, replace=False))
  if n < 2:
    raise ValueError("duplicates and diversity need at least 2 samples and 2 real images")
  # The real subset's within-set distances depend only on n: computed at the first evaluation.
  real_pixels = ctx.cached(ctx.train, f"within_set_pixels_{n}",
                           lambda: collapse.pixel_within_distances(ctx.train.images[index]))
  real_anime = ctx.cached(ctx.train, f"within_set_anime_{n}", lambda: collapse.within_set_distances(
      ctx.features(ctx.train, "anime")[index]))
  values = collapse.duplicate_stats(collapse.pixel_within_distances(ctx.fake.images[:n]),
                                    real_pixels, threshold=ctx.options.duplicate_threshold)
  feat = collapse.feature_duplicate_stats(
      collapse.within_set_distances(ctx.features(ctx.fake, "anime")[:n]), real_anime)
  values.update({f"{k}_anime": v for k, v in feat.items()})
  return values, ctx.protocol(
      n_real=n,
      pixels=f"grayscale {collapse.PIXEL_SIZE}x{collapse.PIXEL_SIZE}, RMS < "
      f"{ctx.options.duplicate_threshold} counts as a duplicate (mirror images do not)",
      features=ctx.networks.protocol("anime") + "; duplicate = nearer than 99% of real "
      "images' nearest neighbours")


@register("tag_hit_rate", headline="hit/both", higher_is_better=True, needs=("classifier",),
          needs_labels=True, label_sets=("anime_hair_eyes",))
def tag_hit_rate_metric(ctx: Context):
  """Conditional runs (anime_hair_eyes labels): the share of samples whose tag classifier's
  most probable hair / eye colour is the requested one, and the same on real images with
  those labels (held-out if there are any, else training images) as the ceiling."""
  from gan_jax.metrics import tag_classifier  # pylint: disable=g-import-not-at-top
  if ctx.fake.labels is None:
    raise ConfigError("tag_hit_rate measures a conditional generator: its samples carry no "
                      "labels (set config.data.labels)")
  values = {f"hit/{k}": v for k, v in tag_classifier.hit_rates(
      ctx.features(ctx.fake, "anime_tags"), ctx.fake.labels).items()}
  real = ctx.heldout if ctx.heldout is not None and ctx.heldout.labels is not None else ctx.train
  requested = {tuple(row) for row in np.asarray(ctx.fake.labels).tolist()}
  keep = None
  if real.labels is not None:
    keep = np.array([tuple(row) in requested for row in np.asarray(real.labels).tolist()], bool)
  if keep is not None and keep.any():
    predictions = {k: v[keep] for k, v in ctx.features(real, "anime_tags").items()}
    values.update({f"hit/real_{k}": v for k, v in tag_classifier.hit_rates(
        predictions, real.labels[keep]).items()})
  else:
    values.update({f"hit/real_{k}": float("nan") for k in ("hair", "eye", "both")})
  return values, ctx.protocol(
      n_requested_pairs=len(requested),
      n_real_with_requested_pairs=int(keep.sum()) if keep is not None else 0,
      real_ceiling=f"{real.name} real images whose (hair, eye) pair was requested",
      labels="each sample's (hair colour, eye colour) drawn from the training labels "
             "(fixed by the seed); a hit: the classifier's argmax colour is the requested one",
      classifier_accuracy="~0.68 hair / ~0.54 eye on held-out single-colour faces "
                          "(gan_jax/metrics/assets/anime_tag_classifier.json)")


# ------------------------------------------------------------------ evaluator --

class Evaluator:
  """Runs the metrics `options.metrics` names on generated images against real ones."""

  def __init__(self, options, train_images: np.ndarray, heldout_images: Optional[np.ndarray],
               real_spec: str = "real images", train_labels: Optional[np.ndarray] = None,
               heldout_labels: Optional[np.ndarray] = None):
    self.options = options
    self.names = parse_metrics(options.metrics)
    if not self.names:
      raise ConfigError("config.eval.metrics names no metric; choose from: "
                        + ", ".join(METRICS.names()))
    self.train = ImageSet("train", np.asarray(train_images), labels=train_labels)
    self.heldout = None if heldout_images is None else ImageSet(
        "held-out", np.asarray(heldout_images), labels=heldout_labels)
    self.networks = FeatureNetworks(options)
    self.real_spec = real_spec
    self.last_fake: Optional[ImageSet] = None  # the latest call's samples and their features
    self.networks.check({need for n in self.names for need in METRICS.get(n).needs})
    missing = [n for n in self.names if METRICS.get(n).needs_heldout and self.heldout is None]
    if missing:
      raise ConfigError(f"metric(s) {', '.join(missing)} compare with held-out real images, "
                        "but the data source has none: set config.eval.heldout_source "
                        "(e.g. tfds:anime_faces:test) or drop them from config.eval.metrics")

  def __call__(self, fake_images: np.ndarray, fake_labels: Optional[np.ndarray] = None,
               **protocol) -> Dict[str, Dict[str, Any]]:
    """{metric: {"values": {...}, "protocol": {...}}} for uint8 NHWC `fake_images` (generated
    from `fake_labels` (N, heads) in conditional runs)."""
    fake = self.last_fake = ImageSet("generated", np.asarray(fake_images), labels=fake_labels)
    ctx = Context(fake, self.train, self.heldout, self.networks, self.options, self.real_spec)
    report = {}
    for name in self.names:
      start = time.perf_counter()
      values, metric_protocol = METRICS.get(name).fn(ctx)
      metric_protocol.update(protocol)
      report[name] = {"values": {k: float(v) for k, v in values.items()},
                      "protocol": metric_protocol,
                      "seconds": round(time.perf_counter() - start, 3)}
    return report


def flatten(report: Dict[str, Dict[str, Any]], prefix: str = "eval/") -> Dict[str, float]:
  """{'eval/fd_anime': ..., 'eval/kid_anime': ...}: every value of a report, one level."""
  return {prefix + key: value for entry in report.values()
          for key, value in entry["values"].items()}


def headline(report: Dict[str, Dict[str, Any]], metric: str) -> float:
  """The value `config.eval.best` ranks by for `metric` in `report`."""
  return report[metric]["values"][METRICS.get(metric).headline]


def is_better(metric: str, value: float, incumbent: Optional[float]) -> bool:
  """Whether `value` of `metric`'s headline beats `incumbent` (None: anything does)."""
  if incumbent is None:
    return np.isfinite(value)
  if METRICS.get(metric).higher_is_better:
    return value > incumbent
  return value < incumbent
