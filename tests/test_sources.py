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


def test_file_splits_hold_out_numbered_files_like_the_tfds_test_split(tmp_path, anime_tfds_dir):
  """'test' = names divisible by 20 (anime ids) or every 20th other file; train is the rest."""
  from conftest import write_anime_manual_dir  # pylint: disable=g-import-not-at-top
  manual = write_anime_manual_dir(str(tmp_path / "manual"))
  zips = f"zip:{manual}/*.zip"
  kwargs = dict(use_cache=False)
  test, _ = sources.load_source(zips, P16, split="test", **kwargs)
  train, _ = sources.load_source(zips, P16, split="train", **kwargs)
  every, _ = sources.load_source(zips, P16, **kwargs)
  tfds_test, _ = sources.load_source("tfds:anime_faces", P16, split="test",
                                     tfds_dir=anime_tfds_dir, **kwargs)
  assert len(test) == 2 and len(train) == 38 and len(every) == 40  # ids 0 and 20 held out
  by_sum = lambda a: a[np.argsort(a.reshape(len(a), -1).sum(1))]  # the two list in other orders
  np.testing.assert_allclose(by_sum(test), by_sum(tfds_test), atol=2)
  entries = [(f"face_{i}.png", None) for i in range(30)]  # not numbers: every 20th is held out
  assert sources.split_entries(entries, "test") == [entries[0], entries[20]]
  assert len(sources.split_entries(entries, "train")) == 28
  assert sources.split_entries([("z.zip:40.jpg", None), ("z.zip:41.jpg", None)], "test") == [
      ("z.zip:40.jpg", None)]
  with pytest.raises(DataError, match="unknown split 'valid'"):
    sources.load_source(zips, P16, split="valid", **kwargs)
  with pytest.raises(DataError, match="give the split once"):
    sources.load_source("tfds:anime_faces:test", P16, split="train", tfds_dir=anime_tfds_dir)


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
