"""Conditioning on a dataset's own classes (config.data.labels='class'): the classes of
folders, zips and TFDS datasets, labels that follow streamed images, and a conditional run
that streams and samples a class by name."""

import io
import os
import shutil
import zipfile

import jax
import ml_collections
import numpy as np
from PIL import Image
import pytest

from gan_jax import data as data_lib
from gan_jax import evaluate, parallel, sample_tags, train
from gan_jax.data import labels as labels_lib, pipeline, sources
from gan_jax.errors import ConfigError, DataError, UserError

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)

CLASSES = ("cat", "dog", "owl")
PER_CLASS = 8


def class_image(k: int, i: int, size: int = 8) -> np.ndarray:
  """Image i of class k: red 60 * k + 30 (class_of_pixels reads it back), blue i."""
  image = np.zeros((size, size, 3), np.uint8)
  image[..., 0] = 60 * k + 30
  image[..., 2] = i
  return image


def class_of_pixels(images) -> np.ndarray:
  """The class index painted into each image (..., H, W, 3) -> (..., 1)."""
  red = np.asarray(images)[..., 0, 0, 0].astype(np.int64)
  return ((red - 30) // 60)[..., None]


def write_class_folders(root: str) -> str:
  """root/<class>/<n>.png for CLASSES (cat's images one folder deeper, which still counts
  as cat), plus what is not a class: an image at the top level, a folder without images."""
  for k, name in enumerate(CLASSES):
    for i in range(PER_CLASS):
      folder = os.path.join(root, name, "sub" if name == "cat" and i % 2 else "")
      os.makedirs(folder, exist_ok=True)
      Image.fromarray(class_image(k, i + 10 * k)).save(os.path.join(folder, f"{k}{i:02d}.png"))
  Image.fromarray(class_image(0, 99)).save(os.path.join(root, "top.png"))
  os.makedirs(os.path.join(root, "notes"))
  with open(os.path.join(root, "notes", "readme.txt"), "w") as f:
    f.write("not an image")
  return root


def zip_of(folder: str, path: str) -> str:
  """The files below `folder` as a zip at `path` (names relative to `folder`)."""
  with zipfile.ZipFile(path, "w") as archive:
    for base, _, files in os.walk(folder):
      for name in files:
        full = os.path.join(base, name)
        archive.write(full, os.path.relpath(full, folder).replace(os.sep, "/"))
  return path


def data_config(source: str, cache_dir: str, **overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(
      source=source, tfds_dir="", labels="class", tags_path="", image_size=8, crop="center",
      max_upscale=2.0, cache=True, cache_dir=cache_dir, split="", max_images=0, feed="host",
      hflip=True, prefetch=2))
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> str:
  return write_class_folders(str(tmp_path_factory.mktemp("classes")))


# ------------------------------------------------------------- the classes --

def test_folders_and_zips_name_their_classes(class_folder, tmp_path, cache_dir):
  archive = zip_of(class_folder, str(tmp_path / "classes.zip"))
  for source in (f"folder:{class_folder}", f"zip:{archive}", class_folder):
    config = data_config(source, cache_dir)
    assert data_lib.label_set_of(config).heads == (("class", CLASSES),)
    assert data_lib.label_classes(config) == (3,)
    feeder, summary = pipeline.make_pipeline(config, batch_size=12, d_steps=2, seed=0,
                                             mesh=parallel.make_mesh())
    # 24 class images and top.png, which is in no class folder.
    assert "labels class from the classes of" in summary, summary
    assert "kept 24 of 25 images; dropped 1 outside the class folders" in summary
    assert summary.endswith("fed from host memory with labels")
    np.testing.assert_array_equal(np.sort(feeder.label_table[:, 0]),
                                  np.repeat(np.arange(3), PER_CLASS))
    for step in (0, 1, 4):
      batch = feeder.batch(step)
      np.testing.assert_array_equal(np.asarray(batch.labels), class_of_pixels(batch.images))
    feeder.close()
  assert sources.file_class_of([class_folder])(os.path.join(class_folder, "cat", "sub",
                                                            "001.png")) == "cat"


def test_recorded_classes_name_the_labels_and_drop_unknown_classes(class_folder, cache_dir):
  """A saved run's data.classes (train.with_recorded_classes) fix the labels' names and order: images
  of a class the run does not know are dropped and counted."""
  config = data_config(class_folder, cache_dir)
  assert len(pipeline.decode_split(config, "")[0]) == 24  # all classes, in the decode cache
  config.classes = ["owl", "cat"]  # which the other set of classes must not be read from
  assert data_lib.label_set_of(config).heads == (("class", ("owl", "cat")),)
  images, labels, summary = pipeline.decode_split(config, "")
  assert "kept 16 of 25 images; dropped 1 outside the class folders and 8 of classes the run " \
      "does not know" in summary
  np.testing.assert_array_equal(labels[:, 0], np.where(class_of_pixels(images)[:, 0] == 2, 0, 1))


def test_a_source_without_classes_says_how_to_lay_them_out(tmp_path, cache_dir):
  flat = tmp_path / "flat"
  flat.mkdir()
  Image.fromarray(class_image(0, 0)).save(flat / "a.png")
  with pytest.raises(DataError, match="needs the images' classes, but folder:.* has none: put "
                     r"each class's images in a folder of its own \(root/<class>/\*.png"):
    data_lib.label_classes(data_config(f"folder:{flat}", cache_dir))
  with pytest.raises(ValueError, match="unknown label set 'classes'; choose from: "
                     "anime_hair_eyes, class"):
    data_lib.label_classes(data_config(f"folder:{flat}", cache_dir, labels="classes"))


def _prepare_tfds_classes(data_dir: str):
  """A prepared TFDS dataset of 12 8x8 images with a ClassLabel 'label' (i % 3), in a
  'validation' split only (no 'train', TFDS's default split)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class GanJaxTestClasses(tfds.core.GeneratorBasedBuilder):
    """Images painted with their class (class_image)."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(8, 8, 3), encoding_format="png"),
          "label": tfds.features.ClassLabel(names=list(CLASSES))}))

    def _split_generators(self, dl_manager):
      return {"validation": self._generate_examples()}

    def _generate_examples(self):
      for i in range(12):
        png = io.BytesIO()
        Image.fromarray(class_image(i % 3, i)).save(png, format="PNG")
        yield i, {"image": png.getvalue(), "label": i % 3}

  builder = GanJaxTestClasses(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare()
  return builder.name


def test_a_tfds_class_label_feature_gives_the_classes(tmp_path, cache_dir, anime_tfds_dir,
                                                      monkeypatch):
  name = _prepare_tfds_classes(str(tmp_path / "tfds"))
  config = data_config(f"tfds:{name}", str(tmp_path / "cache"), tfds_dir=str(tmp_path / "tfds"),
                       split="validation")
  assert data_lib.label_classes(config) == (3,)
  images, labels, summary = pipeline.decode_split(config, "validation")
  assert len(images) == 12 and "kept 12 of 12 images" in summary
  np.testing.assert_array_equal(labels, class_of_pixels(images))
  # The pass over the records for their classes is made once: later runs read its result
  # from the cache (streaming too, which decodes nothing ahead of time).
  def no_pass(*args):
    raise AssertionError("read the records' classes again")
  monkeypatch.setattr(labels_lib, "_tag_lookup", no_pass)
  again, again_labels, again_summary = pipeline.decode_split(config, "validation")
  assert again_summary == summary
  np.testing.assert_array_equal(again, images)
  np.testing.assert_array_equal(again_labels, labels)
  streamed, _ = pipeline.make_pipeline(data_config(
      f"tfds:{name}", str(tmp_path / "cache"), tfds_dir=str(tmp_path / "tfds"),
      split="validation", feed="stream"), batch_size=4, d_steps=1, seed=0, mesh=parallel.make_mesh())
  batch = streamed.batch(0)
  np.testing.assert_array_equal(np.asarray(batch.labels), class_of_pixels(batch.images))
  streamed.close()
  config.cache = False  # without the cache, the records are read again
  with pytest.raises(AssertionError, match="read the records' classes again"):
    pipeline.decode_split(config, "validation")
  # anime_faces' colours are tag lists, not one class per image.
  anime = data_config("tfds:anime_faces", cache_dir, tfds_dir=anime_tfds_dir)
  with pytest.raises(DataError, match="tfds:anime_faces has no single class label feature"):
    data_lib.label_classes(anime)


# --------------------------------------------------------------- streaming --

def test_streamed_labels_are_the_host_feeders_and_follow_replaced_images(class_folder, tmp_path,
                                                                         cache_dir):
  kwargs = dict(batch_size=12, d_steps=2, seed=5, mesh=parallel.make_mesh())
  host, _ = pipeline.make_pipeline(data_config(class_folder, cache_dir), **kwargs)
  stream, summary = pipeline.make_pipeline(data_config(class_folder, cache_dir, feed="stream"),
                                           **kwargs)
  assert summary.startswith("streaming 24 images from")
  assert summary.endswith("decoded 2 batches ahead; labels class from the classes of "
                          f"{class_folder}: kept 24 of 25 images; dropped 1 outside the class "
                          "folders")
  np.testing.assert_array_equal(stream.label_table, host.label_table)
  for step in (0, 3, 1, 8):  # out of order too: a resume starts anywhere
    a, b = host.batch(step), stream.batch(step)
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
  host.close()
  stream.close()
  # A broken image is replaced by the next usable one in source order, which may be of the
  # next class: the label is the replacement's.
  broken = write_class_folders(str(tmp_path / "broken"))
  (tmp_path / "broken" / "cat" / "sub" / "007.png").write_bytes(b"not a png")  # cat's last
  stream, _ = pipeline.make_pipeline(data_config(broken, cache_dir, feed="stream"), **kwargs)
  for step in range(3):
    batch = stream.batch(step)
    np.testing.assert_array_equal(np.asarray(batch.labels), class_of_pixels(batch.images))
  assert stream.skipped_counts() == {"unreadable": 1}
  stream.close()


# ------------------------------------------------------- a conditional run --

def test_a_class_conditional_run_streams_and_samples_a_class(class_folder, tmp_path,
                                                             tags_smoke_config, monkeypatch):
  """One streamed run (its resume is the host feeder's: the test above shows streaming gives
  the same batches and labels at any step), then the sampling command asks for a class
  with the data gone: the run recorded its classes."""
  data = shutil.copytree(class_folder, str(tmp_path / "data"))
  config = tags_smoke_config  # configs/anime_tags.py:smoke with its labels replaced
  config.data.source = f"folder:{data}"
  config.data.labels = "class"
  config.data.feed = "stream"
  config.data.image_size = 8
  config.eval.metrics = "fd_anime"
  config.train.num_steps = 2
  workdir = str(tmp_path / "run")
  scans = []  # the run reads its classes from the data once; the record answers the rest
  monkeypatch.setattr(sources, "file_class_names",
                      lambda paths, scan=sources.file_class_names: scans.append(paths) or
                      scan(paths))
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 2 and len(scans) == 1
  monkeypatch.undo()
  # The tag classifier's hit rate measures anime colours, not a dataset's classes.
  config.eval.metrics = "fd_anime,tag_hit_rate"
  config.eval.best = ""
  with pytest.raises(ConfigError, match="tag_hit_rate measure anime_hair_eyes labels, but "
                     "config.data.labels is 'class'"):
    train.validate_config(config)
  shutil.rmtree(data)
  embeddings = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(state.g_params)
                if "label_embedding" in str(path)]
  assert embeddings and all(shape[0] == 3 for shape in embeddings), embeddings
  out = str(tmp_path / "owls.png")
  result = sample_tags.sample_tags(workdir, "owl", num=3, out=out)
  assert result["label"] == "owl class" and os.path.isfile(out)
  with pytest.raises(UserError, match="unknown class 'wolf'; choose from: cat, dog, owl"):
    sample_tags.sample_tags(workdir, "wolf", num=3, out=out)
  with pytest.raises(UserError, match="name 1 class"):
    sample_tags.sample_tags(workdir, "cat, dog", num=3, out=out)
  with pytest.raises(UserError, match="--hit_rate measures anime hair and eye colours"):
    sample_tags.sample_tags(workdir, "owl", num=3, out=out, hit_rate=True)
  with pytest.raises(ConfigError, match="tag_hit_rate measure anime_hair_eyes labels"):
    evaluate.evaluate_run(workdir, overrides={"metrics": "tag_hit_rate"})  # the command too
