"""The `anime_faces` TensorFlow-Datasets builder, prepared and read without TensorFlow.

64,891 anime character faces (the NTU MLDS 2018 GAN homework set, 64x64 JPEG)
with hair/eye-colour tags for 18k of them. Prepare once from a manual
directory holding `faces64-*.zip` and `tags.csv`:

  python -m gan_jax.data.anime_faces --manual_dir=../shared/data/anime-faces \
      [--data_dir=~/tensorflow_datasets] [--config=64]

then train with `--config.data.source=tfds:anime_faces`. Examples are stored in
the `array_record` format and read with `tfds.data_source`, so TensorFlow is
never imported.

Features: `image` (size x size x 3), `id` (the file's number), `tagged` (whether
tags.csv has a line for it) and the parsed tags as multi-labels `hair_color`,
`hair_length` and `eye_color` (empty where the image has no such tag).
Splits: `test` is every image whose id is a multiple of 20 (about 5%, a fixed
slice for metrics and memorisation checks); `train` is the rest.
"""

import glob
import io
import os
import re
import zipfile
from typing import Iterator, Tuple

import numpy as np

import tensorflow_datasets as tfds  # imported only where this module is (lazily) used

# The tag vocabulary and split live in a light module (no TFDS); re-exported here.
from gan_jax.data.anime_tags import (
    EYE_COLORS, HAIR_COLORS, HAIR_LENGTHS, TEST_ID_MODULUS, parse_tags, read_tags, split_of)

__all__ = ["AnimeFaces", "AnimeFacesConfig", "prepare", "EYE_COLORS", "HAIR_COLORS", "HAIR_LENGTHS",
           "TEST_ID_MODULUS", "parse_tags", "read_tags", "split_of"]

_CITATION = "NTU MLDS 2018 GAN homework (anime faces, hair and eye tags)."


def _resize_png(jpeg: bytes, size: int) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(io.BytesIO(jpeg)) as image:
    image = image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
  out = io.BytesIO()
  image.save(out, format="PNG")
  return out.getvalue()


class AnimeFacesConfig(tfds.core.BuilderConfig):
  """Image size of the prepared dataset (64: the original JPEGs, unchanged)."""

  def __init__(self, *, size: int, **kwargs):
    super().__init__(name=str(size), description=f"{size}x{size} faces", **kwargs)
    self.size = size


class AnimeFaces(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for the anime faces (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "64,891 faces, parsed hair/eye tags, id % 20 == 0 test split."}
  BUILDER_CONFIGS = [AnimeFacesConfig(size=64), AnimeFacesConfig(size=32)]
  DEFAULT_CONFIG_NAME = "64"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the anime-face zips and the tag file in one directory (the manual_dir):
  faces64-000.zip ... faces64-004.zip   <id>.jpg files at the zip root (64x64 JPEG)
  tags.csv                              columns id,tags, e.g. 2,blonde hair and pink eyes
These are the NTU MLDS 2018 GAN homework faces (redistributed in public
repositories as 96x96 images; resize them to 64x64 and zip them). On this
project's machines they are already at ../shared/data/anime-faces/. Then run
  python -m gan_jax.data.anime_faces --manual_dir=DIR
"""

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.size
    encoding = "jpeg" if size == 64 else "png"
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n\n")[1],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format=encoding),
            "id": np.int64,
            "tagged": np.bool_,
            "hair_color": tfds.features.Sequence(tfds.features.ClassLabel(names=HAIR_COLORS)),
            "hair_length": tfds.features.Sequence(tfds.features.ClassLabel(names=HAIR_LENGTHS)),
            "eye_color": tfds.features.Sequence(tfds.features.ClassLabel(names=EYE_COLORS)),
        }),
        supervised_keys=None,
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    zips = sorted(glob.glob(os.path.join(manual_dir, "*.zip")))
    tags_path = os.path.join(manual_dir, "tags.csv")
    if not zips or not os.path.exists(tags_path):
      raise FileNotFoundError(
          f"{manual_dir} must hold the face zips and tags.csv (found {len(zips)} zips, "
          f"tags.csv {'present' if os.path.exists(tags_path) else 'missing'}).\n"
          + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    tags = read_tags(tags_path)
    return {split: self._generate_examples(zips, tags, split) for split in ("train", "test")}

  def _generate_examples(self, zips, tags, split) -> Iterator[Tuple[int, dict]]:
    size = self.builder_config.size
    for path in zips:
      with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
          match = re.fullmatch(r"(\d+)\.jpe?g", os.path.basename(name), re.IGNORECASE)
          if not match or split_of(int(match.group(1))) != split:
            continue
          image_id = int(match.group(1))
          data = archive.read(name)
          image_tags = tags.get(image_id)
          yield image_id, {
              "image": data if size == 64 else _resize_png(data, size),
              "id": image_id,
              "tagged": image_tags is not None,
              **(image_tags or {"hair_color": [], "hair_length": [], "eye_color": []}),
          }


def prepare(manual_dir: str, data_dir: str = None, config: str = "64") -> "AnimeFaces":
  """Prepares the dataset in `data_dir` (TFDS's default if None) from `manual_dir`."""
  builder = AnimeFaces(config=config, data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir)))
  return builder


def main(argv):
  del argv
  builder = prepare(_MANUAL_DIR.value, _DATA_DIR.value, _BUILDER_CONFIG.value)
  print(f"prepared {builder.info.full_name} in {builder.data_dir}: "
        + ", ".join(f"{k} {v.num_examples}" for k, v in builder.info.splits.items()))


if __name__ == "__main__":
  # Flags are defined here, not at import, so that importing the builder from a
  # training run (which has its own --config flag) defines nothing.
  from absl import app, flags  # pylint: disable=g-import-not-at-top,g-multiple-import
  _MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Directory with faces64-*.zip and tags.csv.")
  _DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default: ~/tensorflow_datasets).")
  _BUILDER_CONFIG = flags.DEFINE_enum("config", "64", ["64", "32"], "Image size to prepare.")
  flags.mark_flag_as_required("manual_dir")
  app.run(main)
