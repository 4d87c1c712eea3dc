"""Data sources by name (tfds:, folder:, zip:, bare paths) and the decode cache."""

import os
import shutil
import zipfile

import numpy as np
import pytest

from conftest import write_synthetic_faces
from gan_jax.data import images as images_lib
from gan_jax.data import sources
from gan_jax.data.images import ImagePolicy
from gan_jax.errors import DataError

P16 = ImagePolicy(16)


def test_parse():
  assert sources.parse("tfds:anime_faces") == ("tfds", "anime_faces")
  assert sources.parse("tfds:mnist:test") == ("tfds", "mnist:test")
  assert sources.parse("folder:/a/b") == ("folder", "/a/b")
  assert sources.parse("zip:/a/*.zip") == ("zip", "/a/*.zip")
  assert sources.parse("/a/b") == ("path", "/a/b")
  assert sources.parse("relative/dir") == ("path", "relative/dir")
  with pytest.raises(ValueError, match="unknown data source scheme 'tfsd'; choose from: "
                     "folder, path, tfds, zip"):
    sources.parse("tfsd:anime_faces")


def test_folder_and_zip_sources(tmp_path):
  folder = write_synthetic_faces(str(tmp_path / "pngs"), count=6, size=16)
  archive = str(tmp_path / "faces.zip")
  with zipfile.ZipFile(archive, "w") as z:
    for name in sorted(os.listdir(folder)):
      z.write(os.path.join(folder, name), name)
  kwargs = dict(use_cache=False)
  from_folder, _ = sources.load_source(f"folder:{folder}", P16, **kwargs)
  from_zip, _ = sources.load_source(f"zip:{tmp_path}/*.zip", P16, **kwargs)
  from_path, _ = sources.load_source(folder, P16, **kwargs)
  np.testing.assert_array_equal(from_folder, from_zip)
  np.testing.assert_array_equal(from_folder, from_path)
  with pytest.raises(DataError, match="is not a folder; use zip:"):
    sources.load_source(f"folder:{archive}", P16, **kwargs)
  with pytest.raises(DataError, match="not zip archives"):
    sources.load_source(f"zip:{folder}", P16, **kwargs)


def test_the_cache_decodes_once_and_notices_changes(tmp_path, monkeypatch):
  folder = write_synthetic_faces(str(tmp_path / "pngs"), count=5, size=16)
  cache = str(tmp_path / "cache")
  first, report = sources.load_source(f"folder:{folder}", P16, cache_dir=cache)
  assert len(os.listdir(cache)) == 2  # the array and its report
  decode_all = images_lib.decode_all

  def must_not_decode(*args, **kwargs):
    raise AssertionError("decoded again despite the cache")

  monkeypatch.setattr(images_lib, "decode_all", must_not_decode)
  again, cached_report = sources.load_source(f"folder:{folder}", P16, cache_dir=cache)
  np.testing.assert_array_equal(first, again)
  assert cached_report.summary() == report.summary()
  monkeypatch.setattr(images_lib, "decode_all", decode_all)
  other_size, _ = sources.load_source(f"folder:{folder}", ImagePolicy(8), cache_dir=cache)
  assert other_size.shape == (5, 8, 8, 3)  # another policy is another cache entry
  shutil.copy(os.path.join(folder, "0000.png"), os.path.join(folder, "zzz.png"))
  changed, changed_report = sources.load_source(f"folder:{folder}", P16, cache_dir=cache)
  assert changed_report.skipped_counts() == {"duplicate": 1}  # re-read: the new file was seen
  np.testing.assert_array_equal(changed, first)


def test_tfds_source_reads_anime_faces(anime_tfds_dir, tmp_path):
  train, report = sources.load_source("tfds:anime_faces", P16, tfds_dir=anime_tfds_dir,
                                      cache_dir=str(tmp_path))
  test, _ = sources.load_source("tfds:anime_faces:test", P16, tfds_dir=anime_tfds_dir,
                                use_cache=False)
  assert train.shape == (38, 16, 16, 3) and test.shape == (2, 16, 16, 3)
  assert report.summary() == "loaded 38 images from tfds:anime_faces"


def test_tfds_source_errors(anime_tfds_dir, tmp_path):
  with pytest.raises(DataError, match=r"no split 'valid'; choose from: test, train"):
    sources.load_source("tfds:anime_faces:valid", P16, tfds_dir=anime_tfds_dir)
  with pytest.raises(DataError, match=r"not prepared in .*python -m gan_jax.data.anime_faces"):
    sources.load_source("tfds:anime_faces", P16, tfds_dir=str(tmp_path))
  with pytest.raises(DataError, match=r"not prepared in .*tfds build mnist"):
    sources.load_source("tfds:mnist", P16, tfds_dir=str(tmp_path))
  with pytest.raises(DataError, match="not a TFDS dataset name"):
    sources.load_source("tfds:no_such_dataset_xyz", P16, tfds_dir=str(tmp_path))
