"""The anime_faces TFDS builder: tag parsing, splits, features, and no TensorFlow."""

import os
import sys

import numpy as np
import pytest

from configs import anime
from conftest import write_anime_manual_dir
from gan_jax.data import anime_faces


def test_parse_tags():
  assert anime_faces.parse_tags("blonde long hair and purple eyes") == {
      "hair_color": ["blonde"], "hair_length": ["long"], "eye_color": ["purple"]}
  assert anime_faces.parse_tags("bicolored eyes") == {
      "hair_color": [], "hair_length": [], "eye_color": ["bicolored"]}
  assert anime_faces.parse_tags("blonde blue long pink red short hair and blue pink yellow eyes") == {
      "hair_color": ["blonde", "blue", "pink", "red"], "hair_length": ["long", "short"],
      "eye_color": ["blue", "pink", "yellow"]}
  for bad in ("purple", "blonde eyes", "long eyes", "curly hair", ""):
    with pytest.raises(ValueError):
      anime_faces.parse_tags(bad)


TAGS_CSV = os.path.join(anime.ANIME_FACES_DIR, "tags.csv")


@pytest.mark.skipif(not os.path.exists(TAGS_CSV), reason="the real tags.csv is not here")
def test_every_real_tag_line_parses():
  tags = anime_faces.read_tags(TAGS_CSV)
  assert len(tags) == 18_119
  with_hair = sum(bool(t["hair_color"]) for t in tags.values())
  with_eyes = sum(bool(t["eye_color"]) for t in tags.values())
  assert with_hair > 10_000 and with_eyes > 10_000


def test_split_is_a_fixed_slice_of_ids():
  assert [anime_faces.split_of(i) for i in (0, 1, 19, 20, 40, 66170)] == [
      "test", "train", "train", "test", "test", "train"]


def test_prepared_dataset_reads_without_tensorflow(anime_tfds_dir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = anime_faces.AnimeFaces(data_dir=anime_tfds_dir)
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 38, "test": 2}
  train = builder.as_data_source("train")
  test = builder.as_data_source("test")
  assert sorted(int(test[i]["id"]) for i in range(len(test))) == [0, 20]
  by_id = {int(train[i]["id"]): train[i] for i in range(len(train))}
  names = lambda key, ex: [builder.info.features[key].feature.int2str(int(v)) for v in ex[key]]
  three = by_id[3]
  assert three["image"].shape == (64, 64, 3) and three["image"].dtype == np.uint8
  assert bool(three["tagged"])
  assert names("hair_color", three) == ["black", "brown"]
  assert names("hair_length", three) == ["short"] and names("eye_color", three) == ["blue", "red"]
  assert names("eye_color", by_id[1]) == ["bicolored"] and names("hair_color", by_id[1]) == []
  assert not bool(by_id[5]["tagged"]) and len(by_id[5]["hair_color"]) == 0
  assert isinstance(builder.info.features["image"], tfds.features.Image)
  assert "tensorflow" not in sys.modules


def test_the_32_pixel_config(tmp_path):
  manual = write_anime_manual_dir(str(tmp_path / "manual"), count=21)
  builder = anime_faces.prepare(manual, str(tmp_path / "tfds"), config="32")
  example = builder.as_data_source("test")[0]
  assert example["image"].shape == (32, 32, 3)
  assert builder.info.splits["train"].num_examples == 19  # ids 1..19; 0 and 20 are test


def test_a_manual_dir_without_the_files_says_what_to_do(tmp_path):
  with pytest.raises(Exception) as e:
    anime_faces.prepare(str(tmp_path), str(tmp_path / "tfds"))
  assert "tags.csv" in str(e.value) and "faces64-000.zip" in str(e.value)
