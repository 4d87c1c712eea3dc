"""Image loading from folders, zips and globs; batch selection from (seed, position)."""

import os
import zipfile

import numpy as np
from PIL import Image
import pytest

from conftest import REAL_FACES_ZIP, write_synthetic_faces
from gan_jax.data import EpochSampler, HostFeeder, decode_image, load_images
from gan_jax.errors import DataError


def save(path, array, mode=None, fmt=None):
  Image.fromarray(array, mode).save(path, format=fmt)
  return path


def test_folder_zip_and_glob_give_the_same_images(tmp_path):
  folder = write_synthetic_faces(str(tmp_path / "faces"), count=10, size=20)
  zips = []
  for part, names in enumerate([sorted(os.listdir(folder))[:4], sorted(os.listdir(folder))[4:]]):
    zips.append(str(tmp_path / f"part{part}.zip"))
    with zipfile.ZipFile(zips[-1], "w") as z:
      for n in names:
        z.write(os.path.join(folder, n), n)
  from_folder, report = load_images(folder, 16)
  from_glob, _ = load_images(str(tmp_path / "part*.zip"), 16)
  from_zip, _ = load_images(zips[0], 16)
  assert from_folder.shape == (10, 16, 16, 3) and from_folder.dtype == np.uint8
  assert report.num_loaded == 10 and not report.skipped
  np.testing.assert_array_equal(from_folder, from_glob)
  np.testing.assert_array_equal(from_folder[:4], from_zip)


def test_max_images_keeps_the_first_readable_ones(tmp_path):
  folder = write_synthetic_faces(str(tmp_path), count=10, size=8)
  all_images, _ = load_images(folder, 8)
  some, report = load_images(folder, 8, max_images=3)
  np.testing.assert_array_equal(some, all_images[:3])
  assert report.num_loaded == 3


def test_formats_are_converted_and_resized(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), np.uint8)
  save(tmp_path / "gray.png", rgb[..., 0], "L")
  save(tmp_path / "rgba.png", np.dstack([rgb, np.full((40, 60), 255, np.uint8)]), "RGBA")
  Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
  save(tmp_path / "wide.jpg", rgb)
  images, report = load_images(str(tmp_path), 16)
  assert images.shape == (4, 16, 16, 3) and report.num_loaded == 4
  gray = images[sorted(os.listdir(tmp_path)).index("gray.png")]
  np.testing.assert_array_equal(gray[..., 0], gray[..., 1])  # grey stays grey in RGB


def test_centre_crop_keeps_the_middle_square():
  image = np.zeros((10, 30, 3), np.uint8)
  image[:, 10:20] = 255  # the middle 10x10 is white, the sides black
  out = decode_image(_png_bytes(image), 10)
  assert out.min() == 255


def _png_bytes(array):
  import io  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


def test_unreadable_files_are_skipped_and_counted(tmp_path):
  write_synthetic_faces(str(tmp_path), count=3, size=8)
  good = (tmp_path / "0000.png").read_bytes()
  (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
  (tmp_path / "not_an_image.jpg").write_bytes(b"hello, I am text")
  (tmp_path / "notes.txt").write_text("ignored: not an image extension")
  images, report = load_images(str(tmp_path), 8)
  assert images.shape[0] == 3
  assert report.num_found == 5 and len(report.skipped) == 2
  summary = report.summary()
  assert summary.startswith("loaded 3 images") and "skipped 2 unreadable" in summary


@pytest.mark.parametrize("make", ["missing", "empty", "only_text", "only_broken"])
def test_no_images_is_a_clear_error(tmp_path, make):
  path = tmp_path / "data"
  if make != "missing":
    path.mkdir()
  if make == "only_text":
    (path / "a.txt").write_text("x")
  if make == "only_broken":
    (path / "a.png").write_bytes(b"not a png")
  with pytest.raises(DataError) as e:
    load_images(str(path), 8)
  message = str(e.value)
  assert str(path) in message
  if make != "only_broken":
    assert "--config.data.path" in message


@pytest.mark.skipif(REAL_FACES_ZIP is None, reason="the real anime faces are not on this machine")
def test_real_anime_faces_load():
  images, report = load_images(REAL_FACES_ZIP, 64, max_images=200)
  assert images.shape == (200, 64, 64, 3) and not report.skipped
  assert 40 < images.mean() < 220 and images.std() > 20  # real pictures, not blank


def test_sampler_epochs_are_permutations():
  sampler = EpochSampler(10, seed=3)
  first = sampler.indices(0, 10)
  second = sampler.indices(10, 10)
  assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
  assert not np.array_equal(first, second)


def test_sampler_is_a_pure_function_of_seed_and_position():
  """Any slicing of the stream gives the same indices: what makes resume exact."""
  a = EpochSampler(7, seed=1)
  whole = a.indices(0, 40)
  pieces = np.concatenate([EpochSampler(7, seed=1).indices(s, 8) for s in range(0, 40, 8)])
  np.testing.assert_array_equal(whole, pieces)
  np.testing.assert_array_equal(a.indices(33, 5), whole[33:38])  # crosses an epoch boundary
  assert not np.array_equal(EpochSampler(7, seed=2).indices(0, 40), whole)


def test_host_feeder_batches(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from gan_jax import parallel  # pylint: disable=g-import-not-at-top
  images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1) * np.ones((1, 2, 2, 3), np.uint8)
  mesh = parallel.make_mesh()
  feeder = HostFeeder(images, batch_size=8, d_steps=2, seed=0,
                      sharding=parallel.batch_sharding(mesh, batch_axis=1))
  batch = feeder.batch(3)
  assert batch.shape == (2, 8, 2, 2, 3) and len(batch.sharding.device_set) == len(jax.devices())
  expected = images[feeder.sampler.indices(3 * 16, 16)].reshape(2, 8, 2, 2, 3)
  np.testing.assert_array_equal(np.asarray(batch), expected)
