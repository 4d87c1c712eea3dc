"""Conditional generation on the anime tags: labels in the data, conditional models, the step,
training and resume, the tag sampling command and the tag hit-rate metric."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
import pytest

from conftest import tagged_colours
from gan_jax import data as data_lib
from gan_jax import evaluate, latent_walks, models, parallel, sample_tags, train
from gan_jax.checkpoint import Checkpointer
from gan_jax.data import DeviceFeeder, HostFeeder, LabeledBatch, anime_tags, pipeline
from gan_jax.data.labels import LABEL_SETS, entry_id
from gan_jax.errors import ConfigError, UserError
from gan_jax.metrics import evaluator as evaluator_lib
from gan_jax.metrics import tag_classifier
from test_step import same, step_and_state
from test_train import read_metrics, train_straight_and_resumed

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)

HAIR_EYES = LABEL_SETS.get("anime_hair_eyes")


# ------------------------------------------------------------------ data --

def coded_images(n, size=2):
  """Image i is filled with the value i; its label is (i % 13, (i // 13) % 13)."""
  images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 3),
                                                                        np.uint8)
  labels = np.stack([np.arange(n) % 13, (np.arange(n) // 13) % 13], axis=1).astype(np.int32)
  return images, labels


def label_of_pixel(values):
  values = np.asarray(values, np.int64)
  return np.stack([values % 13, (values // 13) % 13], axis=-1)


@pytest.mark.mesh_devices(8)  # the feeders' per-device shards carry the labels
@pytest.mark.parametrize("cls", [HostFeeder, DeviceFeeder])
def test_labels_follow_their_images_through_the_feeders(cls):
  images, labels = coded_images(96)
  mesh = parallel.make_mesh()
  kwargs = dict(batch_size=16, d_steps=2, seed=3, mesh=mesh, hflip=True)
  feeder = cls(images, labels=labels, **kwargs)
  plain = cls(images, **kwargs)
  for step in (0, 1, 5, 17):  # across epochs
    batch = feeder.batch(step)
    assert isinstance(batch, LabeledBatch)
    assert batch.labels.shape == (2, 16, 2) and batch.labels.dtype == jnp.int32
    assert len(batch.labels.sharding.device_set) == 8
    pixels = np.asarray(batch.images)[..., 0, 0, 0]
    np.testing.assert_array_equal(np.asarray(batch.labels), label_of_pixel(pixels))
    # The images are exactly those of the unlabelled feeder (labels change nothing else).
    np.testing.assert_array_equal(np.asarray(batch.images), np.asarray(plain.batch(step)))
  assert not isinstance(plain.batch(0), tuple)  # unlabelled batches stay plain arrays


def test_entry_ids_and_the_label_set():
  assert entry_id("/data/faces64-000.zip:123.jpg") == 123
  assert entry_id("/data/folder/7.png") == 7 and entry_id("/data/x/face.png") is None
  assert HAIR_EYES.num_classes == (13, 13)
  assert HAIR_EYES.label_of(anime_tags.parse_tags("blue long hair and red eyes")) == (
      anime_tags.HAIR_COLORS.index("blue"), anime_tags.EYE_COLORS.index("red"))
  assert HAIR_EYES.label_of(anime_tags.parse_tags("blue red hair and red eyes")) is None
  assert HAIR_EYES.label_of(anime_tags.parse_tags("blue hair")) is None
  with pytest.raises(ValueError, match="unknown label set 'hair'; choose from: anime_hair_eyes"):
    LABEL_SETS.get("hair")


def test_pipeline_delivers_labels_from_tags_csv_and_counts_the_dropped(tags_smoke_config):
  data = tags_smoke_config.data
  data.image_size = 16
  kwargs = dict(batch_size=16, d_steps=2, seed=0, mesh=parallel.make_mesh())
  for feed in ("host", "device"):
    data.feed = feed
    feeder, summary = pipeline.make_pipeline(data, **kwargs)
    # ids 1..96 minus the 4 held out (20, 40, 60, 80); 8 untagged (11, 22, ..., 88);
    # 12 more with two hair colours (multiples of 7 but not of 11 or 20).
    assert "labels anime_hair_eyes from" in summary and "tags.csv" in summary
    assert "kept 72 of 92 images" in summary and "dropped 8 untagged and 12 without" in summary
    assert summary.endswith(f"fed from {feed} memory with labels")
    for step in (0, 3):
      batch = feeder.batch(step)
      np.testing.assert_array_equal(np.asarray(batch.labels), tagged_colours(batch.images))
    assert feeder.label_table.shape == (72, 2)
    feeder.close()
  data.feed = "stream"  # streamed batches carry the labels too
  feeder, summary = pipeline.make_pipeline(data, **kwargs)
  assert summary.startswith("streaming 72 images from") and "kept 72 of 92" in summary
  for step in (0, 3):
    batch = feeder.batch(step)
    np.testing.assert_array_equal(np.asarray(batch.labels), tagged_colours(batch.images))
  feeder.close()
  data.feed = "auto"
  data.tags_path = "/nowhere/tags.csv"
  with pytest.raises(UserError, match="no tags file at /nowhere/tags.csv"):
    pipeline.make_pipeline(data, **kwargs)


def test_labels_from_the_tfds_features(anime_tfds_dir, cache_dir):
  """tfds:anime_faces carries the tags; its miniature test split has one single-colour face."""
  config = ml_collections.ConfigDict(dict(
      source="tfds:anime_faces:test", tfds_dir=anime_tfds_dir, labels="anime_hair_eyes",
      tags_path="", image_size=8, crop="center", max_upscale=2.0, cache=True,
      cache_dir=cache_dir))
  images, labels, summary = pipeline.decode_split(config, "")
  assert images.shape == (1, 8, 8, 3)  # id 0: blonde long hair and purple eyes; id 20: untagged
  np.testing.assert_array_equal(labels, [[anime_tags.HAIR_COLORS.index("blonde"),
                                          anime_tags.EYE_COLORS.index("purple")]])
  assert "kept 1 of 2 images" in summary


# ---------------------------------------------------------------- models --

def model_config(name, d_cond="projection"):
  return ml_collections.ConfigDict(dict(name=name, g_width=4, d_width=4, label_embed_dim=4,
                                        d_cond=d_cond, d_spectral_norm=True, latent_dim=6,
                                        mapping_layers=2))


@pytest.mark.parametrize("name", ["dcgan", "resnet", "stylegan2", "progan"])
def test_conditional_models_depend_on_the_label(name):
  cfg = model_config(name, "projection+acgan")
  cfg.d_spectral_norm = False  # cheaper to compile; the recipe's SN D trains in the step tests
  g, d = models.build_models(cfg, (8, 8, 3), (13, 13))
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
  labels = jnp.array([[0, 0], [3, 5], [12, 12], [7, 1]], jnp.int32)
  other = jnp.array([[1, 0], [3, 6], [0, 12], [2, 2]], jnp.int32)
  g_vars = jax.jit(lambda: g.init(jax.random.PRNGKey(1), z, labels, train=False))()
  generate = jax.jit(lambda y: g.apply(g_vars, z, y, train=False))
  a, b = generate(labels), generate(other)
  assert a.shape == (4, 8, 8, 3)
  assert all(float(jnp.max(jnp.abs(a[i] - b[i]))) > 1e-6 for i in range(4))
  d_vars = jax.jit(lambda: d.init(jax.random.PRNGKey(2), a, labels, train=False))()
  assert "conditional" in d_vars["params"]
  judge = jax.jit(lambda y: d.apply(d_vars, a, y, train=False, return_aux=True))
  (la, aux), (lb, _) = judge(labels), judge(other)
  assert la.shape == (4,) and (np.abs(np.asarray(la - lb)) > 1e-7).all()
  np.testing.assert_allclose(jax.jit(lambda: d.apply(d_vars, a, labels, train=False))(), la,
                             rtol=1e-5)
  assert aux["0"].shape == (4, 13) and aux["1"].shape == (4, 13)
  with pytest.raises(ValueError, match="is conditional .* call it with labels"):
    g.apply(g_vars, z, train=False)


def test_projection_logit_is_psi_plus_the_embedding_inner_product():
  """D(x, y) - D(x, y') = <E[y] - E[y'], phi(x)> (no spectral norm here: plain embeddings)."""
  cfg = model_config("dcgan")
  cfg.d_spectral_norm = False
  cfg.d_norm = "none"
  _, d = models.build_models(cfg, (8, 8, 3), (13, 13))
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, 8, 8, 3), minval=-1, maxval=1)
  labels = jnp.array([[0, 1], [2, 3], [4, 5]], jnp.int32)
  other = jnp.array([[5, 4], [3, 2], [1, 0]], jnp.int32)
  variables = d.init(jax.random.PRNGKey(1), x, labels, train=False)
  emb = variables["params"]["conditional"]["projection"]
  e = lambda y: emb["head_0"]["embedding"][y[:, 0]] + emb["head_1"]["embedding"][y[:, 1]]
  # phi: D's last hidden map (the input of the final conv), summed over space.
  phi = jnp.sum(nn_input_of_last_conv(d, variables, x), axis=(1, 2))
  diff = d.apply(variables, x, labels, train=False) - d.apply(variables, x, other, train=False)
  np.testing.assert_allclose(diff, jnp.sum((e(labels) - e(other)) * phi, axis=1), rtol=1e-4,
                             atol=1e-6)


def nn_input_of_last_conv(d, variables, x):
  """The input of the DCGAN discriminator's final 4x4 conv (flax's intercept_methods)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  seen = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Conv) and context.module.features == 1:
      seen.append(args[0])
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    d.apply(variables, x, jnp.zeros((len(x), 2), jnp.int32), train=False)
  return seen[-1]


def test_families_without_label_support_say_so():
  cfg = ml_collections.ConfigDict(dict(name="began", g_width=4, d_width=4))
  with pytest.raises(ValueError, match="'began' does not support class labels.*dcgan, resnet, "
                                       "biggan, biggan_deep, stylegan2, progan, r3gan"):
    models.build_models(cfg, (8, 8, 3), (13, 13))
  g, _ = models.build_models(model_config("dcgan"), (8, 8, 3))
  z = jnp.zeros((2, 6))
  with pytest.raises(ValueError, match="unconditional"):
    g.init(jax.random.PRNGKey(0), z, jnp.zeros((2, 2), jnp.int32), train=False)


# ------------------------------------------------------------------ step --

def test_conditional_step_uses_the_labels_and_acgan_adds_its_terms(tags_smoke_config):
  config = tags_smoke_config
  config.model.d_cond = "projection+acgan"
  with pytest.raises(ConfigError, match="ac_weight is 0"):
    train.validate_config(config)
  config.loss.ac_weight = 1.0
  train.validate_config(config)
  step, state = step_and_state(config)
  g, d, g_tx, d_tx = step.generator, step.discriminator, step.g_tx, step.d_tx
  step = jax.jit(step)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, (1, 16, 8, 8, 3), np.uint8))
  labels = jnp.asarray(rng.integers(0, 13, (1, 16, 2)), jnp.int32)
  a, metrics = step(state, LabeledBatch(images, labels))
  b, _ = step(state, LabeledBatch(images, labels))
  c, _ = step(state, LabeledBatch(images, (labels + 1) % 13))
  assert same(a, b)  # pure
  assert not same(a.d_params, c.d_params) and not same(a.g_params, c.g_params)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  # Cross-entropies of two 13-class heads: G's on the fakes, D's on the reals and the fakes.
  assert 0 < float(metrics["g_ac_loss"]) < float(metrics["d_ac_loss"])
  assert 0 <= float(metrics["d_ac_accuracy"]) <= 1
  with pytest.raises(ValueError, match="is conditional"):
    step(state, images)  # a conditional model refuses a batch without labels
  # One D call on reals and fakes (train.d_passes=fused): the same labels and terms, to
  # float rounding (without spectral norm, whose fused pass advances its power iteration once).
  config.model.d_spectral_norm = False
  metrics_of = lambda: jax.jit(train.make_step(config, g, d, g_tx, d_tx))(
      state, LabeledBatch(images, labels))[1]
  g, d = train.make_models(config)
  state = jax.jit(train.make_init(config, g, d, g_tx, d_tx))()
  separate = metrics_of()
  config.train.d_passes = "fused"
  fused = metrics_of()
  assert set(fused) == set(separate) == set(metrics)
  for name in separate:
    np.testing.assert_allclose(fused[name], separate[name], rtol=1e-4, atol=1e-6)
  config.model.d_cond = "projection"
  with pytest.raises(ConfigError, match="needs an AC-GAN head"):
    train.validate_config(config)


def test_conditional_batchnorm_trains_the_embeddings_of_the_classes_it_saw(tags_smoke_config):
  """A G update with g_cond=cbn moves the cBN scale/shift rows of the classes in the batch
  (G's fakes are drawn with the batch's labels) and leaves the others at zero; in bfloat16
  compute, with the embeddings kept float32."""
  config = tags_smoke_config
  config.model.g_cond = "cbn"
  config.model.dtype = "bfloat16"
  train.validate_config(config)
  g, d = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  state = jax.jit(train.make_init(config, g, d, g_tx, d_tx))()
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, (1, 16, 8, 8, 3), np.uint8))
  labels = jnp.asarray(np.stack([np.arange(16) % 4, np.arange(16) % 4 + 4], axis=1)[None])
  new, metrics = jax.jit(train.make_step(config, g, d, g_tx, d_tx))(
      state, LabeledBatch(images, labels.astype(jnp.int32)))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  gamma = new.g_params["UpBlock_0"]["ConditionalBatchNorm_0"]["gamma"]
  hair, eye = gamma["head_0"]["embedding"], gamma["head_1"]["embedding"]
  assert hair.dtype == jnp.float32
  moved = lambda rows: (np.abs(np.asarray(rows)).sum(axis=1) > 0)
  assert moved(hair[:4]).all() and not moved(hair[4:]).any()     # hair classes 0-3 seen
  assert moved(eye[4:8]).all() and not moved(eye[:4]).any() and not moved(eye[8:]).any()


# -------------------------------------------------------- train and resume --

@pytest.mark.parametrize("feed", ["host", "device"])
def test_conditional_resume_continues_exactly(tmp_path, tags_smoke_config, feed):
  config = tags_smoke_config
  config.data.feed = feed
  config.data.hflip = True
  config.sample.every = 100
  straight, resumed = train_straight_and_resumed(config, tmp_path, 4, 2)
  assert same(straight, resumed)
  assert read_metrics(tmp_path / "straight") == read_metrics(tmp_path / "resumed")
  # configs/anime_tags.py's smoke recipe (this fixture): its conditional parts are there.
  assert "conditional" in resumed.d_params and "label_embedding" in resumed.g_params


def test_unconditional_configs_keep_plain_batches_and_refuse_label_metrics(smoke_config):
  feeder, summary = pipeline.make_pipeline(smoke_config.data, batch_size=16, d_steps=1, seed=0,
                                           mesh=parallel.make_mesh())
  batch = feeder.batch(0)
  assert isinstance(batch, jax.Array) and batch.dtype == jnp.uint8 and "labels" not in summary
  assert data_lib.label_classes(smoke_config.data) == ()
  smoke_config.eval.every = 2
  smoke_config.eval.metrics = "tag_hit_rate"
  smoke_config.eval.best = ""
  with pytest.raises(ConfigError, match="tag_hit_rate measure a conditional generator"):
    train.validate_config(smoke_config)
  smoke_config.eval.every = 0
  smoke_config.model.g_cond = "cbn"  # a conditional G without labels
  with pytest.raises(ConfigError, match="g_cond='cbn' conditions G on class labels, but "
                     "config.data.labels is empty"):
    train.validate_config(smoke_config)


# ---------------------------------------------------------- tags and metric --

@pytest.mark.parametrize("text, label", [
    ("blue hair red eyes", ("blue", "red")),
    ("Blonde long hair and green eyes", ("blonde", "green")),
    ("red eyes, white hair", ("white", "red")),
])
def test_tag_requests_parse(text, label):
  hair, eye = sample_tags.parse_request(text, HAIR_EYES)
  assert (anime_tags.HAIR_COLORS[hair], anime_tags.EYE_COLORS[eye]) == label


@pytest.mark.parametrize("text, message", [
    ("blue hair", "names no eye colors"),
    ("red eyes", "names no hair colors"),
    ("blue pink hair red eyes", r"names 2 \(blue, pink\) hair colors"),
    ("teal hair red eyes", "unknown hair word 'teal'"),
    ("blue hair red", "cannot parse tag phrase 'red'"),
    ("", "--tags is empty"),
])
def test_bad_tag_requests_say_what_is_wrong(text, message):
  with pytest.raises(UserError, match=message) as e:
    sample_tags.parse_request(text, HAIR_EYES)
  assert "hair colours: aqua, black, blonde" in str(e.value)


def onehot(index, classes=13):
  out = np.full((len(index), classes), 0.01, np.float32)
  out[np.arange(len(index)), index] = 0.9
  return out


def test_hit_rate_metric_on_a_hand_checked_case():
  """Four samples: hair right 3 times, eyes right twice, both right once; the real ceiling is
  over the held-out images whose (hair, eye) pair was requested."""
  requested = np.array([[1, 2], [1, 2], [3, 4], [5, 6]])
  seen_hair, seen_eye = [1, 1, 3, 0], [2, 0, 0, 6]
  fake = evaluator_lib.ImageSet("generated", np.zeros((4, 8, 8, 3), np.uint8), labels=requested)
  fake.features["anime_tags"] = {"hair_color": onehot(seen_hair), "eye_color": onehot(seen_eye)}
  held = evaluator_lib.ImageSet("held-out", np.zeros((3, 8, 8, 3), np.uint8),
                                labels=np.array([[1, 2], [3, 4], [9, 9]]))
  held.features["anime_tags"] = {"hair_color": onehot([1, 0, 9]), "eye_color": onehot([2, 4, 9])}
  train_set = evaluator_lib.ImageSet("train", np.zeros((1, 8, 8, 3), np.uint8))
  ctx = evaluator_lib.Context(fake, train_set, held, None, None, "test")
  values, protocol = evaluator_lib.METRICS.get("tag_hit_rate").fn(ctx)
  assert values == {"hit/hair": 0.75, "hit/eye": 0.5, "hit/both": 0.25,
                    "hit/real_hair": 0.5, "hit/real_eye": 1.0, "hit/real_both": 0.5}
  assert protocol["n_requested_pairs"] == 3 and protocol["n_real_with_requested_pairs"] == 2
  assert tag_classifier.hit_rates({"hair_color": onehot([]), "eye_color": onehot([])},
                                  np.zeros((0, 2)))["both"] != 0  # nan


def test_conditional_stylegan2_trains_evaluates_and_samples_with_w_truncation(
    tmp_path, tagged_faces, cache_dir):
  """configs/stylegan2_tags.py end to end on the tagged faces: training with labels, then
  evaluation and the sampling command with StyleGAN2's truncation trick (psi), towards the
  one average w or each label's own, each truncated protocol in its own report; psi = 0
  gives every requested face the centre's image. A family without the trick refuses psi,
  an unconditional one the label centres."""
  from configs import dcgan, stylegan2, stylegan2_tags  # pylint: disable=g-import-not-at-top
  config = stylegan2_tags.get_config("smoke")
  config.data.source = tagged_faces
  config.data.cache_dir = cache_dir
  config.penalty.use = ""  # lazy R1's compile is tests/test_configs.py's (stylegan2 smoke)
  config.train.num_steps = 2
  config.eval.metrics, config.eval.best = "tag_hit_rate", ""
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  assert Checkpointer(os.path.join(workdir, "checkpoints")).all_steps() == [2]
  (truncated,) = evaluate.evaluate_run(workdir, "latest", {"truncation_psi": 0.5})
  assert sorted(os.listdir(os.path.join(workdir, "eval"))) == [
      "step_2_psi0.5.json", "step_2_psi0.5_samples.png"]
  protocol = truncated["metrics"]["tag_hit_rate"]["protocol"]
  assert "w truncated with psi 0.5" in protocol["generator"]
  (towards_labels,) = evaluate.evaluate_run(workdir, "latest", {"truncation_psi": 0.5,
                                                                "truncation_center": "label"})
  assert "step_2_psi0.5_label.json" in os.listdir(os.path.join(workdir, "eval"))
  assert ("w truncated with psi 0.5 towards each label's average w (over 256 latents)"
          in towards_labels["metrics"]["tag_hit_rate"]["protocol"]["generator"])
  with pytest.raises(UserError, match="--truncation_center: unknown truncation centre 'mean'"):
    evaluate.evaluate_run(workdir, "latest", {"truncation_psi": 0.5, "truncation_center": "mean"})
  out = str(tmp_path / "grid.png")
  result = sample_tags.sample_tags(workdir, "blue hair red eyes", 4, out, truncation_psi=0.0)
  assert result["truncation_psi"] == 0.0
  tiles = lambda grid: [grid[2 + 10 * r:10 + 10 * r, 2 + 10 * c:10 + 10 * c]  # 2 x 2 tiles
                         for r in range(2) for c in range(2)]              # of 8x8, 2 px apart
  faces = tiles(np.asarray(Image.open(out)))
  assert all(np.array_equal(faces[0], face) for face in faces[1:])
  # Towards the label's own average w: again one face at psi = 0, but that label's centre.
  result = sample_tags.sample_tags(workdir, "blue hair red eyes", 4, out, truncation_psi=0.0,
                                   truncation_center="label")
  assert result["truncation_center"] == "label"
  label_faces = tiles(np.asarray(Image.open(out)))
  assert all(np.array_equal(label_faces[0], face) for face in label_faces[1:])
  assert not np.array_equal(label_faces[0], faces[0])
  plain = sample_tags.sample_tags(workdir, "blue hair red eyes", 4, out)
  faces = tiles(np.asarray(Image.open(out)))
  assert plain["truncation_psi"] == 1.0 and not np.array_equal(faces[0], faces[1])
  with pytest.raises(UserError, match="--truncation_psi: truncation_psi must be a finite"):
    sample_tags.sample_tags(workdir, "blue hair red eyes", 4, out, truncation_psi=float("nan"))
  other = dcgan.get_config("smoke")
  other.eval.truncation_psi = 0.5
  with pytest.raises(ConfigError, match="eval.truncation_psi: truncation_psi=0.5: .*has no "
                                        "truncation trick in w"):
    train.validate_config(other)
  unconditional = stylegan2.get_config("smoke")
  unconditional.eval.truncation_psi, unconditional.eval.truncation_center = 0.5, "label"
  with pytest.raises(ConfigError, match="eval.truncation_center: truncation centre 'label': "
                                        ".*is not a conditional generator"):
    train.validate_config(unconditional)
  config.eval.truncation_psi, config.eval.truncation_center_latents = 0.5, 0
  config.eval.truncation_center = "label"
  with pytest.raises(ConfigError, match="truncation_center_latents must be >= 1, got 0"):
    train.validate_config(config)


def test_evaluation_and_the_sampling_command_on_a_conditional_run(tmp_path, tagged_faces,
                                                                   cache_dir):
  """On BigGAN's smoke recipe (a conditional family other than the resnet of the tests above;
  tests/test_configs.py trains anime_tags.py's), with its truncation trick."""
  from configs import biggan  # pylint: disable=g-import-not-at-top
  config = biggan.get_config("smoke")
  config.data.source = tagged_faces
  config.data.cache_dir = cache_dir
  config.model.g_spectral_norm = False  # halves the compile time; tests/test_biggan.py has SN G
  config.train.num_steps = 2
  config.eval.every = 2
  config.eval.metrics = "tags,tag_hit_rate"
  config.eval.best = "tag_hit_rate"
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  assert Checkpointer(os.path.join(workdir, "checkpoints")).all_steps() == [2]
  assert os.path.exists(os.path.join(workdir, "samples", "step_0000002.png"))
  row = read_metrics(workdir)[-1]
  for key in ("hair", "eye", "both", "real_hair", "real_eye", "real_both"):
    assert 0 <= row[f"eval/hit/{key}"] <= 1, key
  with open(os.path.join(workdir, "eval", "step_2.json")) as f:
    protocol = json.load(f)["metrics"]["tag_hit_rate"]["protocol"]
  assert protocol["n_fake"] == 32 and protocol["n_real_with_requested_pairs"] > 0
  # The evaluate command reproduces the figure.
  (report,) = evaluate.evaluate_run(workdir, "latest", {"metrics": "tag_hit_rate"})
  assert report["metrics"]["tag_hit_rate"]["values"]["hit/both"] == pytest.approx(
      row["eval/hit/both"])
  # Truncated latents are another protocol: their own report and grid; the plain one stays.
  (truncated,) = evaluate.evaluate_run(workdir, "latest", {"metrics": "tag_hit_rate",
                                                           "truncation": 0.5})
  assert sorted(os.listdir(os.path.join(workdir, "eval"))) == [
      "step_2.json", "step_2_samples.png", "step_2_truncation0.5.json",
      "step_2_truncation0.5_samples.png"]
  with open(os.path.join(workdir, "eval", "step_2_truncation0.5.json")) as f:
    saved = json.load(f)["metrics"]["tag_hit_rate"]
  assert saved == truncated["metrics"]["tag_hit_rate"]
  assert "truncated to [-0.5, 0.5]" in saved["protocol"]["generator"]
  with pytest.raises(UserError, match="--truncation: truncation threshold must be > 0"):
    evaluate.evaluate_run(workdir, "latest", {"truncation": -1})
  # Corrected by Metropolis-Hastings with the run's (projection) D, each chain keeping its
  # sample's labels: another protocol again, and the samples moved (that a correction is
  # reproducible is tests/test_evaluate.py's).
  (corrected,) = evaluate.evaluate_run(workdir, "latest", {"metrics": "tag_hit_rate",
                                                           "mh_steps": 3})
  with open(os.path.join(workdir, "eval", "step_2_mh3.json")) as f:
    saved = json.load(f)
  assert saved["metrics"] == corrected["metrics"] and 0 < saved["mh_acceptance"] <= 1
  assert ("corrected by Metropolis-Hastings with D over 3 proposals per sample"
          in saved["metrics"]["tag_hit_rate"]["protocol"]["generator"])
  def grid(name):
    return np.asarray(Image.open(os.path.join(workdir, "eval", name)))
  first = grid("step_2_mh3_samples.png")
  assert first.shape == grid("step_2_samples.png").shape
  assert not np.array_equal(first, grid("step_2_samples.png"))
  with pytest.raises(UserError, match="--mh_steps must be >= 0"):
    evaluate.evaluate_run(workdir, "latest", {"mh_steps": -1})
  # With D first tuned against the G-EMA on labelled training images (their labels drawn
  # with them, the fakes generated from those labels): its own report.
  (tuned,) = evaluate.evaluate_run(workdir, "latest", {"metrics": "tag_hit_rate", "mh_steps": 3,
                                                       "mh_tune": 2})
  with open(os.path.join(workdir, "eval", "step_2_mh3_tune2.json")) as f:
    assert json.load(f)["metrics"] == tuned["metrics"]
  # The sampling command: a grid of the requested colours, and its hit rates.
  out = str(tmp_path / "grid.png")
  result = sample_tags.sample_tags(workdir, "blue hair red eyes", 6, out, hit_rate=True)
  assert result["label"] == "blue hair_color, red eye_color" and result["step"] == 2
  grid = np.asarray(Image.open(out))
  assert grid.shape == (2 * 10 + 2, 3 * 10 + 2, 3)  # 6 tiles of 8x8, 2 px padding
  assert set(result["hit_rate"]["samples"]) == {"hair", "eye", "both"}
  with pytest.raises(UserError, match="--truncation: truncation threshold must be > 0"):
    sample_tags.sample_tags(workdir, "blue hair red eyes", 6, out, truncation=-1.0)
  # Hair class 3 (blue) with eye class 10 (red) is not in the generated data: no ceiling.
  assert result["hit_rate"]["num_real"] == 0
  with pytest.raises(UserError, match="unknown eyes word 'teal'"):
    sample_tags.sample_tags(workdir, "blue hair teal eyes", 4, out)
  # Latent walks of a conditional run hold one label fixed, named as sample_tags names it.
  with pytest.raises(UserError, match="the run is conditional: name the label to walk with"):
    latent_walks.latent_walks(workdir, "interpolate", out)
  walk = latent_walks.latent_walks(workdir, "interpolate", out, rows=2, columns=3,
                                   tags="blue hair red eyes")
  assert walk["label"] == result["label"] and (walk["rows"], walk["columns"]) == (2, 3)
  other = latent_walks.latent_walks(workdir, "interpolate", out, rows=2, columns=3,
                                    tags="green hair red eyes")
  assert other["crossfade_gap"] != walk["crossfade_gap"]  # the label reaches G


def test_conditional_batchnorm_generator_conditions_only_through_its_norms():
  """g_cond=cbn (resnet): z is not extended; every up-block BatchNorm takes per-class scale
  and shift (zero at initialisation, so the untrained G ignores the labels); once they
  differ, the labels change the images."""
  cfg = model_config("resnet")
  cfg.g_cond = "cbn"
  g, _ = models.build_models(cfg, (8, 8, 3), (13, 13))
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
  labels = jnp.array([[0, 0], [3, 5], [12, 12], [7, 1]], jnp.int32)
  other = jnp.array([[1, 0], [3, 6], [0, 12], [2, 2]], jnp.int32)
  variables = g.init(jax.random.PRNGKey(1), z, labels, train=False)
  params = variables["params"]
  assert "label_embedding" not in params and params["Dense_0"]["kernel"].shape[0] == 6
  cbn = params["UpBlock_0"]["ConditionalBatchNorm_0"]
  channels = params["Dense_0"]["kernel"].shape[1] // 16  # the 4x4 map G's first block gets
  assert cbn["gamma"]["head_0"]["embedding"].shape == (13, channels)  # a vector per class
  assert "scale" not in cbn.get("norm", {})
  generate = lambda v, y: g.apply(v, z, y, train=False)
  np.testing.assert_allclose(generate(variables, labels), generate(variables, other), atol=1e-6)
  moved = {**variables, "params": jax.tree_util.tree_map_with_path(  # the embeddings only
      lambda path, x: x + 0.5 * jax.random.normal(jax.random.PRNGKey(len(path)), x.shape)
      if "ConditionalBatchNorm" in jax.tree_util.keystr(path) else x, params)}
  a, b = generate(moved, labels), generate(moved, other)
  assert all(float(jnp.max(jnp.abs(a[i] - b[i]))) > 1e-4 for i in range(4))
  cfg.name = "dcgan"
  with pytest.raises(ValueError, match="'cbn' .* is implemented for the resnet family"):
    models.build_models(cfg, (8, 8, 3), (13, 13))
  cfg.g_cond = "film"
  with pytest.raises(ValueError, match="unknown model.g_cond 'film'; choose from: concat, cbn"):
    models.build_models(cfg, (8, 8, 3), (13, 13))
