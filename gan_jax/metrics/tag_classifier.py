"""A small anime-face tag classifier: offline FD-anime/KID features and colour histograms.

An evaluation network that needs no downloaded weights. A plain CNN (flax.linen,
per-pixel LayerNorm, no batch statistics) sees 64x64 RGB faces and predicts, with
independent sigmoids (tags are multi-label), the hair colour (13 classes), eye
colour (13) and hair length (2) tags of the anime faces (`gan_jax.data.anime_tags`).
Its penultimate layer (`features`, 256 dims) plays the role Inception's pool
features play in FID: the Frechet distance between the features of generated
and real faces is "FD-anime" (and KID uses the same features). Its predicted
colours over a set of images give colour histograms whose distance between
generated and real sets exposes dropped modes (`colour_histograms`,
`histogram_distance`).

Every FD-anime number must come from the same network, like fixed Inception
weights: the trained classifier is a project asset,
`gan_jax/metrics/assets/anime_tag_classifier.msgpack` (with a `.json` sidecar
saying how it was trained and how well it does on the held-out split), and
`load_classifier()` loads it. It was trained once with

  python -m gan_jax.metrics.tag_classifier --manual_dir=../shared/data/anime-faces \
      --out=gan_jax/metrics/assets/anime_tag_classifier.msgpack --steps=3000

(14 minutes on 2 shared CPU cores) on the 17,225 tagged images of the train
split (ids not divisible by 20). On the 889 tagged test-split images it gets
the hair colour of single-coloured faces right 68% of the time (always
answering the most common colour: 19%), eye colour 54% (21%); mean per-class
ROC-AUC 0.87 (hair), 0.81 (eyes), 0.69 (hair length). Hair 'yellow' and eye
'white' never occur in the training tags, so their probabilities stay near 0.
Retraining changes every FD-anime number: compare numbers only under one asset
(its sidecar's `params_sha256` names it).

Inputs: NHWC images, either uint8 in [0, 255] or float in [-1, 1] (what the
generators output), with 3 channels (1 is repeated). Images of another size
than 64x64 are resized to 64x64 inside the jitted function with
`jax.image.resize(..., 'bilinear', antialias=True)` (non-square ones are
stretched). Images are processed in batches of a fixed size (the last one
padded), so each input size compiles once.
"""

import hashlib
import json
import os
import re
import sys
import time
import zipfile
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax.data.anime_tags import EYE_COLORS, HAIR_COLORS, HAIR_LENGTHS, read_tags, split_of
from gan_jax.errors import ConfigError, DataError

INPUT_SIZE = 64
HEADS = {"hair_color": HAIR_COLORS, "eye_color": EYE_COLORS, "hair_length": HAIR_LENGTHS}
DEFAULT_WIDTHS = (32, 64, 128)
DEFAULT_FEATURE_DIM = 256
ASSET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                          "anime_tag_classifier.msgpack")
TRAIN_COMMAND = ("python -m gan_jax.metrics.tag_classifier --manual_dir=../shared/data/anime-faces "
                 "--out=PATH --steps=3000")
_FORMAT = "gan_jax.tag_classifier/1"

Labels = Dict[str, np.ndarray]  # head -> (N, classes) uint8 multi-hot; all-zero rows: untagged


class TagNet(nn.Module):
  """CNN: per width a stage of (stride-2 conv, 3x3 conv), each LayerNorm + swish.

  The first stage's stride-2 conv is 4x4 (64x64 -> 32x32); the default widths
  (32, 64, 128) end at 8x8. Returns (features (N, feature_dim), {head: logits
  (N, classes)}) for float inputs (N, 64, 64, 3) in [-1, 1]; the features are
  swish(Dense(mean-pooled last stage)).

  The LayerNorms normalise each pixel over channels only (no statistics over
  the image or the batch): per-image normalisations such as GroupNorm would
  remove the mean colour, which is what the labels are about.
  """
  widths: Sequence[int] = DEFAULT_WIDTHS
  feature_dim: int = DEFAULT_FEATURE_DIM

  @nn.compact
  def __call__(self, x):
    def conv_norm_act(x, width, stride, kernel):
      x = nn.Conv(width, (kernel, kernel), strides=(stride, stride), padding="SAME")(x)
      return nn.swish(nn.LayerNorm()(x))

    for i, width in enumerate(self.widths):
      x = conv_norm_act(x, width, 2, 4 if i == 0 else 3)
      x = conv_norm_act(x, width, 1, 3)
    x = jnp.mean(x, axis=(1, 2))
    features = nn.swish(nn.Dense(self.feature_dim)(x))
    # Each head starts at the prior "one class of K": probability 1/K per class.
    prior = lambda k: nn.initializers.constant(-np.log(max(k - 1, 1)))
    logits = {head: nn.Dense(len(classes), bias_init=prior(len(classes)), name=head)(features)
              for head, classes in HEADS.items()}
    return features, logits


def prepare_images(images: jax.Array) -> jax.Array:
  """Float NHWC images in [-1, 1], any size, 1 or 3 channels -> (N, 64, 64, 3) float32.

  Other sizes are resized with bilinear interpolation, antialiased when shrinking.
  """
  images = jnp.asarray(images, jnp.float32)
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  if images.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    images = jax.image.resize(images, (images.shape[0], INPUT_SIZE, INPUT_SIZE, 3), "bilinear",
                              antialias=True)
  return images


def _check_images(images) -> np.ndarray:
  """The images as a numpy array; ConfigError unless uint8 or float NHWC with 1 or 3 channels."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ConfigError(f"the tag classifier wants NHWC images with 1 or 3 channels, got shape "
                      f"{images.shape}")
  if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
    raise ConfigError(f"the tag classifier wants uint8 or float images, got {images.dtype}")
  return images


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]; float arrays are taken to be in [-1, 1] already."""
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 127.5 - 1.0
  return images.astype(np.float32)


class TagClassifier:
  """A trained TagNet with batched, jitted `features`, `predict` and `features_and_predict`."""

  def __init__(self, params, *, widths: Sequence[int] = DEFAULT_WIDTHS,
               feature_dim: int = DEFAULT_FEATURE_DIM, batch_size: int = 250):
    self.net = TagNet(widths=tuple(widths), feature_dim=feature_dim)
    self.params = jax.tree_util.tree_map(jnp.asarray, params)
    self.widths = tuple(widths)
    self.feature_dim = feature_dim
    self.batch_size = batch_size
    net = self.net

    def forward(params, images):
      features, logits = net.apply({"params": params}, prepare_images(images))
      return features, {head: jax.nn.sigmoid(l) for head, l in logits.items()}

    self._forward = jax.jit(forward)

  def features_and_predict(self, images) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """(features (N, D) float32, {head: sigmoid probabilities (N, classes)}) of NHWC images.

    uint8 images are in [0, 255], float ones in [-1, 1]; every batch has
    `batch_size` images (the last is zero-padded), so one compile per image size.
    """
    images = _check_images(images)
    n, b = len(images), self.batch_size
    features, probs = [], []
    for start in range(0, n, b):
      chunk = to_float(images[start:start + b])
      if len(chunk) < b:
        chunk = np.concatenate([chunk, np.zeros((b - len(chunk),) + chunk.shape[1:], np.float32)])
      f, p = jax.device_get(self._forward(self.params, chunk))
      features.append(f)
      probs.append(p)
    if not features:
      return (np.zeros((0, self.feature_dim), np.float32),
              {head: np.zeros((0, len(c)), np.float32) for head, c in HEADS.items()})
    return (np.concatenate(features)[:n].astype(np.float32),
            {head: np.concatenate([p[head] for p in probs])[:n].astype(np.float32)
             for head in HEADS})

  def features(self, images) -> np.ndarray:
    """The (N, feature_dim) float32 penultimate features (FD-anime, KID) of NHWC images."""
    return self.features_and_predict(images)[0]

  def predict(self, images) -> Dict[str, np.ndarray]:
    """{'hair_color': (N, 13), 'eye_color': (N, 13), 'hair_length': (N, 2)} sigmoid probs."""
    return self.features_and_predict(images)[1]


# ----------------------------------------------------------------------------- files


def _sidecar_path(path: str) -> str:
  return os.path.splitext(path)[0] + ".json"


def params_sha256(params) -> str:
  """A hash of the parameter values (names which network produced an FD-anime number)."""
  digest = hashlib.sha256()
  for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(params), key=lambda x: str(x[0])):
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
  return digest.hexdigest()


def save_classifier(path: str, classifier: TagClassifier,
                    metadata: Optional[Mapping[str, Any]] = None) -> None:
  """Writes the classifier to `path` (msgpack: architecture + float32 params) and, given
  `metadata`, a JSON sidecar next to it (same name, `.json`)."""
  params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), classifier.params)
  payload = {"format": _FORMAT, "input_size": INPUT_SIZE, "widths": list(classifier.widths),
             "feature_dim": classifier.feature_dim, "params": params}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(payload))
  os.replace(tmp, path)
  if metadata is not None:
    with open(_sidecar_path(path), "w") as f:
      json.dump(dict(metadata), f, indent=2, sort_keys=False)
      f.write("\n")


def load_classifier(path: Optional[str] = None, batch_size: int = 250) -> TagClassifier:
  """The classifier stored at `path` (default: the committed asset); DataError if unusable."""
  path = ASSET_PATH if path is None else path
  how = f"Train one with: {TRAIN_COMMAND}"
  if not os.path.isfile(path):
    raise DataError(f"no tag classifier file at {path}. {how}")
  try:
    with open(path, "rb") as f:
      payload = flax.serialization.msgpack_restore(f.read())
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
      raise ValueError(f"not a {_FORMAT} file")
    widths = tuple(int(w) for w in payload["widths"])
    feature_dim = int(payload["feature_dim"])
    params = payload["params"]
    expected = jax.eval_shape(TagNet(widths, feature_dim).init, jax.random.key(0),
                              jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))["params"]
    got = jax.tree_util.tree_map(lambda a: (tuple(a.shape), np.dtype(a.dtype)), params)
    want = jax.tree_util.tree_map(lambda a: (tuple(a.shape), np.dtype(np.float32)), expected)
    if got != want:
      raise ValueError("its parameters do not match the network it describes")
  except Exception as e:  # pylint: disable=broad-except  # any failure to read it means "corrupt"
    raise DataError(f"the tag classifier file {path} is unreadable or corrupt "
                    f"({type(e).__name__}: {e}). {how}") from None
  return TagClassifier(params, widths=widths, feature_dim=feature_dim, batch_size=batch_size)


# ----------------------------------------------------------------------------- colour histograms


def colour_histograms(predictions: Mapping[str, np.ndarray]) -> Dict[str, Dict[str, Any]]:
  """Per attribute: the share of images whose most probable class is each class, and the
  mean probability of each class.

  {head: {'classes': names, 'share': (K,) summing to 1, 'mean_probability': (K,), 'count': N}}
  for every head in `predictions` (as returned by `TagClassifier.predict`).
  """
  out = {}
  for head, probs in predictions.items():
    probs = np.asarray(probs, np.float64)
    n, k = probs.shape
    share = np.bincount(np.argmax(probs, axis=1), minlength=k) / max(n, 1)
    out[head] = {"classes": HEADS.get(head, tuple(str(i) for i in range(k))), "share": share,
                 "mean_probability": probs.mean(axis=0) if n else np.zeros(k), "count": n}
  return out


def histogram_distance(h_real: Mapping[str, Dict[str, Any]], h_fake: Mapping[str, Dict[str, Any]],
                       *, present: float = 0.01, absent: float = 0.1) -> Dict[str, Dict[str, Any]]:
  """Total variation between the argmax-class shares of two `colour_histograms`, per attribute,
  and the dropped modes: classes with a real share >= `present` whose fake share is below
  `absent` times the real share.

  {head: {'total_variation': float in [0, 1], 'dropped': [class names]}} for the heads in both.
  """
  out = {}
  for head in h_real:
    if head not in h_fake:
      continue
    real, fake = np.asarray(h_real[head]["share"]), np.asarray(h_fake[head]["share"])
    classes = h_real[head]["classes"]
    dropped = [classes[i] for i in range(len(real))
               if real[i] >= present and fake[i] < absent * real[i]]
    out[head] = {"total_variation": float(0.5 * np.abs(real - fake).sum()), "dropped": dropped}
  return out


def hit_rates(predictions: Mapping[str, np.ndarray], labels: np.ndarray) -> Dict[str, float]:
  """{'hair', 'eye', 'both'}: the share of images whose most probable hair colour (eye colour,
  both) is the one in `labels` (int (N, 2): indices into HAIR_COLORS, EYE_COLORS, the
  anime_hair_eyes label set); nan for no images."""
  labels = np.asarray(labels)
  if not len(labels):
    return {"hair": float("nan"), "eye": float("nan"), "both": float("nan")}
  hair = np.argmax(predictions["hair_color"], axis=1) == labels[:, 0]
  eye = np.argmax(predictions["eye_color"], axis=1) == labels[:, 1]
  return {"hair": float(hair.mean()), "eye": float(eye.mean()), "both": float((hair & eye).mean())}


# ----------------------------------------------------------------------------- data


def labels_of(tags: Sequence[Mapping[str, Sequence[str]]]) -> Labels:
  """{head: (N, classes) uint8 multi-hot} from parsed tags (`anime_tags.parse_tags` dicts)."""
  out = {}
  for head, classes in HEADS.items():
    index = {c: i for i, c in enumerate(classes)}
    hot = np.zeros((len(tags), len(classes)), np.uint8)
    for row, t in enumerate(tags):
      for name in t.get(head, ()):
        hot[row, index[name]] = 1
    out[head] = hot
  return out


def load_tagged(manual_dir: str, split: Optional[str] = None, limit: int = 0,
                ) -> Tuple[np.ndarray, np.ndarray, Labels]:
  """(ids (N,), uint8 images (N, 64, 64, 3), labels) of the tagged anime faces, sorted by id.

  Reads `faces64-*.zip` and `tags.csv` in `manual_dir`; `split` ('train' or
  'test', None for both) keeps one side of the fixed id % 20 split; `limit` > 0
  keeps the first `limit` ids.
  """
  from gan_jax.data import images as image_io  # pylint: disable=g-import-not-at-top
  tags_path = os.path.join(manual_dir, "tags.csv")
  zips = sorted(p for p in (os.listdir(manual_dir) if os.path.isdir(manual_dir) else [])
                if p.endswith(".zip"))
  if not zips or not os.path.isfile(tags_path):
    raise DataError(f"{manual_dir} must hold the anime-face zips (faces64-*.zip) and tags.csv "
                    f"(found {len(zips)} zips, tags.csv "
                    f"{'present' if os.path.isfile(tags_path) else 'missing'})")
  tags = read_tags(tags_path)
  wanted = sorted(i for i in tags if split is None or split_of(i) == split)
  if limit > 0:
    wanted = wanted[:limit]
  wanted_set = set(wanted)
  policy = image_io.ImagePolicy(size=INPUT_SIZE)
  decoded = {}
  for name in zips:
    with zipfile.ZipFile(os.path.join(manual_dir, name)) as archive:
      for member in archive.namelist():
        match = re.fullmatch(r"(\d+)\.jpe?g", os.path.basename(member), re.IGNORECASE)
        if match and int(match.group(1)) in wanted_set:
          try:
            decoded[int(match.group(1))] = image_io.decode_image(archive.read(member), policy)
          except image_io.SkipImage:
            pass
  ids = np.array([i for i in wanted if i in decoded], np.int64)
  if not len(ids):
    raise DataError(f"no tagged images{' of the ' + split + ' split' if split else ''} "
                    f"found in the zips of {manual_dir}")
  images = np.stack([decoded[i] for i in ids])
  return ids, images, labels_of([tags[i] for i in ids])


def data_fingerprint(ids: np.ndarray, images: np.ndarray, labels: Labels) -> str:
  """sha256 of the ids, images and labels a classifier was trained on (first 16 hex digits)."""
  digest = hashlib.sha256()
  for array in (ids, images, *(labels[h] for h in HEADS)):
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------- training


def augment(key: jax.Array, images: jax.Array, max_shift: int = 4) -> jax.Array:
  """Random horizontal flips and translations by up to `max_shift` pixels (edge padded) of float
  NHWC images; no colour changes (colour is the label)."""
  n, h, w, c = images.shape
  flip_key, shift_key = jax.random.split(key)
  flip = jax.random.bernoulli(flip_key, 0.5, (n,))
  images = jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
  if max_shift <= 0:
    return images
  padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)),
                   mode="edge")
  offsets = jax.random.randint(shift_key, (n, 2), 0, 2 * max_shift + 1)
  crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def tag_loss(logits: Mapping[str, jax.Array], labels: Mapping[str, jax.Array]) -> jax.Array:
  """Sum over heads of the mean sigmoid cross-entropy over the images with a tag of that head."""
  total = 0.0
  for head in HEADS:
    y = labels[head].astype(jnp.float32)
    mask = (y.sum(axis=1) > 0).astype(jnp.float32)
    per_image = optax.sigmoid_binary_cross_entropy(logits[head], y).mean(axis=1)
    total = total + (per_image * mask).sum() / jnp.maximum(mask.sum(), 1.0)
  return total


def fit(images: np.ndarray, labels: Labels, *, steps: int, batch_size: int = 64, seed: int = 0,
        learning_rate: float = 2e-3, weight_decay: float = 1e-4, max_shift: int = 4,
        widths: Sequence[int] = DEFAULT_WIDTHS, feature_dim: int = DEFAULT_FEATURE_DIM,
        log_every: int = 0) -> TagClassifier:
  """A TagClassifier trained for `steps` Adam(W) steps (warmup + cosine decay) on uint8 images
  (N, 64, 64, 3) and their multi-hot labels, sampling epochs without replacement.

  Batches and augmentations are a pure function of (seed, step).
  """
  n = len(images)
  if n == 0 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or images.dtype != np.uint8:
    raise ConfigError(f"fit wants uint8 images (N, {INPUT_SIZE}, {INPUT_SIZE}, 3), got "
                      f"{images.dtype} {images.shape}")
  batch_size = min(batch_size, n)
  net = TagNet(widths=tuple(widths), feature_dim=feature_dim)
  key = jax.random.key(seed)
  init_key, order_key, augment_key = jax.random.split(key, 3)
  params = net.init(init_key, jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))["params"]
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, learning_rate, warmup_steps=min(200, max(steps // 10, 1)), decay_steps=max(steps, 2),
      end_value=learning_rate * 0.01)
  optimizer = optax.adamw(schedule, weight_decay=weight_decay)
  opt_state = optimizer.init(params)
  all_images = jnp.asarray(images)
  all_labels = {h: jnp.asarray(v) for h, v in labels.items()}
  per_epoch = n // batch_size

  def batch_at(step):
    epoch, position = step // per_epoch, step % per_epoch
    order = jax.random.permutation(jax.random.fold_in(order_key, epoch), n)
    index = jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))
    x = all_images[index].astype(jnp.float32) / 127.5 - 1.0
    x = augment(jax.random.fold_in(augment_key, step), x, max_shift)
    return x, {h: v[index] for h, v in all_labels.items()}

  def train_step(params, opt_state, step):
    x, y = batch_at(step)
    loss_fn = lambda p: tag_loss(net.apply({"params": p}, x)[1], y)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  train_step = jax.jit(train_step, donate_argnums=(0, 1))
  start, losses = time.time(), []
  for step in range(steps):
    params, opt_state, loss = train_step(params, opt_state, jnp.int32(step))
    if log_every:
      losses.append(loss)
      if (step + 1) % log_every == 0 or step + 1 == steps:
        mean = float(np.mean(jax.device_get(losses)))
        losses = []
        print(f"step {step + 1}/{steps}  loss {mean:.4f}  {time.time() - start:.0f}s", flush=True)
  return TagClassifier(jax.device_get(params), widths=widths, feature_dim=feature_dim)


# ----------------------------------------------------------------------------- evaluation


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """ROC-AUC (the Mann-Whitney statistic, ties count half); nan without both classes."""
  scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
  n_pos, n_neg = positive.sum(), (~positive).sum()
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  order = np.argsort(scores, kind="mergesort")
  ranks = np.empty(len(scores))
  sorted_scores = scores[order]
  # Average ranks (1-based) over runs of equal scores.
  boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
  starts = np.concatenate([[0], boundaries])
  ends = np.concatenate([boundaries, [len(scores)]])
  for s, e in zip(starts, ends):
    ranks[order[s:e]] = (s + e + 1) / 2.0
  return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
  """Average precision: the mean over positives of the precision among images scored at least as
  high (ties in input order); nan without positives."""
  positive = np.asarray(positive, bool)
  if not positive.any():
    return float("nan")
  order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
  hits = positive[order]
  precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
  return float(precision[hits].mean())


def _nanmean(values) -> float:
  values = [v for v in values if not np.isnan(v)]
  return float(np.mean(values)) if values else float("nan")


def tag_metrics(predictions: Mapping[str, np.ndarray], labels: Labels,
                ) -> Dict[str, Dict[str, float]]:
  """Per head, over the images with a tag of that head: the mean over classes of ROC-AUC and of
  average precision (classes with positives and negatives), and the top-1 accuracy of the most
  probable class among images with exactly one tag of that head (and, for comparison, the
  accuracy of always answering the most common class)."""
  out = {}
  for head in HEADS:
    y = np.asarray(labels[head], bool)
    p = np.asarray(predictions[head])
    tagged = y.any(axis=1)
    y, p = y[tagged], p[tagged]
    both = [k for k in range(y.shape[1]) if 0 < y[:, k].sum() < len(y)]
    single = y.sum(axis=1) == 1
    truth = np.argmax(y[single], axis=1)
    out[head] = {
        "mean_roc_auc": _nanmean([roc_auc(p[:, k], y[:, k]) for k in both]),
        "mean_average_precision": _nanmean([average_precision(p[:, k], y[:, k]) for k in both]),
        "top1_single": float(np.mean(np.argmax(p[single], axis=1) == truth)) if len(truth)
                       else float("nan"),
        "majority_top1_single": float(np.bincount(truth).max() / len(truth)) if len(truth)
                                else float("nan"),
        "tagged": int(tagged.sum()), "single": int(single.sum())}
  return out


def evaluate(classifier: TagClassifier, images: np.ndarray, labels: Labels,
             ) -> Dict[str, Dict[str, float]]:
  """`tag_metrics` of the classifier's predictions on images with known labels."""
  return tag_metrics(classifier.predict(images), labels)


def train_classifier(manual_dir: str, out_path: str, *, steps: int = 3000, batch_size: int = 64,
                     seed: int = 0, learning_rate: float = 2e-3, weight_decay: float = 1e-4,
                     max_shift: int = 4, widths: Sequence[int] = DEFAULT_WIDTHS,
                     feature_dim: int = DEFAULT_FEATURE_DIM, log_every: int = 200,
                     command: str = "") -> Dict[str, Any]:
  """Trains on the train split's tagged faces in `manual_dir`, evaluates on the test split's,
  writes the classifier to `out_path` with its JSON sidecar, and returns the sidecar dict."""
  start = time.time()
  ids, images, labels = load_tagged(manual_dir, "train")
  test_ids, test_images, test_labels = load_tagged(manual_dir, "test")
  print(f"decoded {len(ids)} train and {len(test_ids)} test tagged images in "
        f"{time.time() - start:.0f}s", flush=True)
  classifier = fit(images, labels, steps=steps, batch_size=batch_size, seed=seed,
                   learning_rate=learning_rate, weight_decay=weight_decay, max_shift=max_shift,
                   widths=widths, feature_dim=feature_dim, log_every=log_every)
  held_out = evaluate(classifier, test_images, test_labels)
  n_params = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(classifier.params))
  metadata = {
      "format": _FORMAT,
      "classes": {head: list(classes) for head, classes in HEADS.items()},
      "input_size": INPUT_SIZE,
      "input_resize": "jax.image.resize bilinear, antialias=True",
      "feature_dim": feature_dim,
      "widths": list(widths),
      "parameters": n_params,
      "params_sha256": params_sha256(classifier.params),
      "data": {"train_images": len(ids), "test_images": len(test_ids),
               "data_fingerprint": data_fingerprint(ids, images, labels),
               "test_fingerprint": data_fingerprint(test_ids, test_images, test_labels),
               "split": "test: id % 20 == 0 (gan_jax.data.anime_tags.split_of)"},
      "training": {"seed": seed, "steps": steps, "batch_size": batch_size,
                   "learning_rate": learning_rate, "weight_decay": weight_decay,
                   "augmentation": f"horizontal flip, translation up to {max_shift}px (edge pad)",
                   "wall_seconds": round(time.time() - start, 1), "jax": jax.__version__},
      "classes_without_training_examples": {
          head: [c for c, count in zip(classes, labels[head].sum(axis=0)) if count == 0]
          for head, classes in HEADS.items()},
      "held_out": held_out,
      "command": command,
  }
  save_classifier(out_path, classifier, metadata)
  return metadata


def main(argv):
  del argv
  command = "python -m gan_jax.metrics.tag_classifier " + " ".join(sys.argv[1:])
  metadata = train_classifier(
      _MANUAL_DIR.value, _OUT.value, steps=_STEPS.value, batch_size=_BATCH_SIZE.value,
      seed=_SEED.value, learning_rate=_LEARNING_RATE.value, log_every=_LOG_EVERY.value,
      command=command)
  print(json.dumps(metadata["held_out"], indent=2))
  print(f"wrote {_OUT.value} and {_sidecar_path(_OUT.value)} "
        f"({metadata['training']['wall_seconds']:.0f}s)")


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top,g-multiple-import
  _MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder with faces64-*.zip and tags.csv.")
  _OUT = flags.DEFINE_string("out", None, "Where to write the classifier (.msgpack, + .json).")
  _STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.")
  _BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per step.")
  _SEED = flags.DEFINE_integer("seed", 0, "Seed of the initialisation, batches and augmentation.")
  _LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-3, "Peak AdamW learning rate.")
  _LOG_EVERY = flags.DEFINE_integer("log_every", 200, "Print the mean loss every this many steps.")
  flags.mark_flags_as_required(["manual_dir", "out"])
  app.run(main)
