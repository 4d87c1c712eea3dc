"""The anime tag classifier: learns, saves/loads, batches, histograms, and the committed asset."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REAL_FACES_ZIP, REPO, write_anime_manual_dir
from configs import anime
from gan_jax.errors import ConfigError, DataError, UserError
from gan_jax.metrics import tag_classifier as tc

TINY = dict(widths=(16, 16), feature_dim=32)
HAIR = np.array([[220, 30, 30], [30, 200, 30], [40, 40, 230], [230, 220, 40]], np.uint8)
EYES = np.array([[220, 220, 220], [10, 10, 10], [200, 40, 200], [40, 200, 200]], np.uint8)


def synthetic(count: int, seed: int):
  """Noisy images whose top half has the hair colour (4 classes) and bottom half the eye
  colour (4 other colours); a third have no eye tag, none a hair-length tag."""
  rng = np.random.default_rng(seed)
  hair, eyes = rng.integers(0, 4, count), rng.integers(0, 4, count)
  images = rng.integers(0, 30, (count, 64, 64, 3)).astype(np.uint8)
  images[:, :32] += HAIR[hair][:, None, None] // 8 * 7
  images[:, 32:] += EYES[eyes][:, None, None] // 8 * 7
  tags = [{"hair_color": [tc.HAIR_COLORS[h]], "eye_color": [tc.EYE_COLORS[e]] if i % 3 else []}
          for i, (h, e) in enumerate(zip(hair, eyes))]
  return images, tc.labels_of(tags)


@pytest.fixture(scope="module")
def tiny():
  """A tiny classifier trained for a few dozen steps on synthetic images."""
  images, labels = synthetic(256, seed=0)
  return tc.fit(images, labels, steps=40, batch_size=32, seed=0, learning_rate=1e-2, **TINY)


@pytest.fixture(scope="module")
def asset():
  return tc.load_classifier()


def test_a_few_dozen_steps_learn_the_synthetic_colours(tiny):
  images, labels = synthetic(128, seed=1)
  metrics = tc.evaluate(tiny, images, labels)
  assert metrics["hair_color"]["top1_single"] > 0.6  # chance: about 0.25
  assert metrics["eye_color"]["top1_single"] > 0.6
  assert metrics["hair_color"]["mean_roc_auc"] > 0.85
  assert metrics["hair_length"]["tagged"] == 0
  assert metrics["eye_color"]["tagged"] == sum(i % 3 != 0 for i in range(128))


def test_save_load_round_trip_is_exact(tiny, tmp_path):
  path = str(tmp_path / "c.msgpack")
  tc.save_classifier(path, tiny, {"note": "test"})
  assert os.path.exists(str(tmp_path / "c.json"))
  loaded = tc.load_classifier(path)
  images, _ = synthetic(10, seed=2)
  f0, p0 = tiny.features_and_predict(images)
  f1, p1 = loaded.features_and_predict(images)
  np.testing.assert_array_equal(f0, f1)
  for head in tc.HEADS:
    np.testing.assert_array_equal(p0[head], p1[head])
  assert tc.params_sha256(loaded.params) == tc.params_sha256(tiny.params)


def test_batching_and_padding_match_one_big_batch(tiny):
  images, _ = synthetic(11, seed=3)
  small = tc.TagClassifier(tiny.params, batch_size=4, **TINY)  # 3 batches, the last padded
  big = tc.TagClassifier(tiny.params, batch_size=16, **TINY)
  np.testing.assert_allclose(small.features(images), big.features(images), atol=1e-5)
  np.testing.assert_allclose(small.predict(images)["eye_color"], big.predict(images)["eye_color"],
                             atol=1e-6)
  assert small.features(images[:0]).shape == (0, 32)


def test_the_committed_classifier_loads_and_runs(asset):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 64, 64, 3)).astype(np.uint8)
  features, probs = asset.features_and_predict(images)
  assert features.shape == (5, asset.feature_dim) and features.dtype == np.float32
  assert asset.feature_dim == 256 and np.isfinite(features).all()
  assert {k: v.shape for k, v in probs.items()} == {
      "hair_color": (5, 13), "eye_color": (5, 13), "hair_length": (5, 2)}
  assert all(((p >= 0) & (p <= 1)).all() for p in probs.values())
  # Floats in [-1, 1] are the same images; other sizes are resized to 64.
  np.testing.assert_allclose(asset.features(images.astype(np.float32) / 127.5 - 1), features,
                             atol=1e-5)
  assert asset.features(images[:, ::2, ::2]).shape == (5, 256)
  with pytest.raises(ConfigError):
    asset.features(images[..., :2])


def test_histogram_distance_flags_dropped_classes():
  rng = np.random.default_rng(0)
  real = {head: rng.dirichlet(np.ones(13), 500) for head in ("hair_color", "eye_color")}
  h_real = tc.colour_histograms(real)
  assert np.isclose(h_real["hair_color"]["share"].sum(), 1.0)
  same = tc.histogram_distance(h_real, tc.colour_histograms(real))
  assert same == {"hair_color": {"total_variation": 0.0, "dropped": []},
                  "eye_color": {"total_variation": 0.0, "dropped": []}}
  fake = {k: v.copy() for k, v in real.items()}
  fake["hair_color"][:, tc.HAIR_COLORS.index("green")] = 0.0  # never the most probable
  distance = tc.histogram_distance(h_real, tc.colour_histograms(fake))
  assert distance["hair_color"]["dropped"] == ["green"]
  assert distance["hair_color"]["total_variation"] > 0.03
  assert distance["eye_color"] == {"total_variation": 0.0, "dropped": []}


def test_ranking_metrics():
  assert tc.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
  assert tc.roc_auc([0.5, 0.5, 0.5], [0, 1, 0]) == 0.5
  assert tc.roc_auc([0.9, 0.1, 0.8], [0, 1, 0]) == 0.0
  assert np.isnan(tc.roc_auc([0.1, 0.2], [1, 1]))
  assert tc.average_precision([0.9, 0.8, 0.7], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)


def test_a_missing_or_corrupt_file_says_how_to_train_one(tmp_path):
  with pytest.raises(DataError, match="python -m gan_jax.metrics.tag_classifier"):
    tc.load_classifier(str(tmp_path / "absent.msgpack"))
  corrupt = tmp_path / "corrupt.msgpack"
  corrupt.write_bytes(os.urandom(1000))
  with pytest.raises(UserError, match="corrupt"):
    tc.load_classifier(str(corrupt))
  truncated = tmp_path / "truncated.msgpack"
  truncated.write_bytes(open(tc.ASSET_PATH, "rb").read()[:5000])
  with pytest.raises(DataError, match="python -m gan_jax.metrics.tag_classifier"):
    tc.load_classifier(str(truncated))


def test_train_classifier_writes_the_classifier_and_its_sidecar(tmp_path):
  manual = write_anime_manual_dir(str(tmp_path / "manual"), count=21)  # tagged: 0, 1, 3, 20
  out = str(tmp_path / "out" / "c.msgpack")
  meta = tc.train_classifier(manual, out, steps=2, batch_size=2, log_every=0, **TINY)
  assert meta["data"]["train_images"] == 2 and meta["data"]["test_images"] == 2
  assert meta["held_out"]["hair_color"]["tagged"] == 1
  assert json.load(open(str(tmp_path / "out" / "c.json")))["params_sha256"] == meta["params_sha256"]
  assert tc.params_sha256(tc.load_classifier(out).params) == meta["params_sha256"]
  with pytest.raises(DataError, match="tags.csv"):
    tc.train_classifier(str(tmp_path), out, steps=1)


def test_the_tag_module_and_classifier_do_not_import_tfds():
  code = ("import sys; import gan_jax.metrics.tag_classifier; "
          "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported'")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                 env={**os.environ, "JAX_PLATFORMS": "cpu"})


@pytest.mark.skipif(REAL_FACES_ZIP is None, reason="the real anime faces are not here")
def test_the_committed_classifier_recognises_real_hair_colours(asset):
  _, images, labels = tc.load_tagged(anime.ANIME_FACES_DIR, "test", limit=300)
  metrics = tc.evaluate(asset, images, labels)["hair_color"]
  assert metrics["single"] > 150
  assert metrics["top1_single"] > 0.55  # the most common colour alone: about 0.25
