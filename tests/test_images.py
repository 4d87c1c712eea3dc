"""Decoding images from folders, zips and globs; every kind of bad input has a defined outcome."""

import io
import os
import zipfile

import numpy as np
from PIL import Image
import pytest

from conftest import REAL_FACES_ZIP, write_synthetic_faces
from gan_jax.data.images import ImagePolicy, decode_image, load_images
from gan_jax.errors import DataError

P16 = ImagePolicy(size=16)


def png_bytes(array, mode=None):
  buffer = io.BytesIO()
  Image.fromarray(array, mode).save(buffer, format="PNG")
  return buffer.getvalue()


def test_folder_zip_and_glob_give_the_same_images(tmp_path):
  folder = write_synthetic_faces(str(tmp_path / "faces"), count=10, size=20)
  names = sorted(os.listdir(folder))
  zips = []
  for part, chunk in enumerate([names[:4], names[4:]]):
    zips.append(str(tmp_path / f"part{part}.zip"))
    with zipfile.ZipFile(zips[-1], "w") as z:
      for n in chunk:
        z.write(os.path.join(folder, n), n)
  from_folder, report = load_images(folder, P16)
  from_glob, _ = load_images(str(tmp_path / "part*.zip"), P16)
  from_zip, _ = load_images(zips[0], P16)
  assert from_folder.shape == (10, 16, 16, 3) and from_folder.dtype == np.uint8
  assert report.num_loaded == 10 and not report.skipped and not report.ignored
  np.testing.assert_array_equal(from_folder, from_glob)
  np.testing.assert_array_equal(from_folder[:4], from_zip)


def test_max_images_keeps_the_first_usable_ones(tmp_path):
  folder = write_synthetic_faces(str(tmp_path), count=10, size=8)
  all_images, _ = load_images(folder, ImagePolicy(8))
  some, report = load_images(folder, ImagePolicy(8), max_images=3)
  np.testing.assert_array_equal(some, all_images[:3])
  assert report.num_loaded == 3


def test_grayscale_palette_and_16_bit_become_rgb():
  rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
  gray = decode_image(png_bytes(rgb[..., 0], "L"), P16)
  np.testing.assert_array_equal(gray[..., 0], rgb[..., 0])
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  buffer = io.BytesIO()
  Image.fromarray(rgb).convert("P").save(buffer, format="PNG")
  assert decode_image(buffer.getvalue(), P16).shape == (16, 16, 3)
  deep = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)  # 16-bit grey
  buffer = io.BytesIO()
  deep.save(buffer, format="PNG")
  np.testing.assert_allclose(decode_image(buffer.getvalue(), P16)[..., 0], rgb[..., 0], atol=1)


def test_transparency_is_composited_on_white():
  rgba = np.zeros((16, 16, 4), np.uint8)
  rgba[:8, :, :] = (200, 10, 10, 255)  # opaque red top half, transparent black bottom half
  out = decode_image(png_bytes(rgba, "RGBA"), P16)
  np.testing.assert_array_equal(out[0, 0], (200, 10, 10))
  np.testing.assert_array_equal(out[15, 15], (255, 255, 255))
  palette = Image.fromarray(rgba[..., :3]).convert("P")
  palette.info["transparency"] = palette.getpixel((15, 15))
  buffer = io.BytesIO()
  palette.save(buffer, format="PNG", transparency=palette.info["transparency"])
  np.testing.assert_array_equal(decode_image(buffer.getvalue(), P16)[15, 15], (255, 255, 255))


def test_non_square_images_are_centre_cropped_or_stretched():
  image = np.zeros((10, 30, 3), np.uint8)
  image[:, 10:20] = 255  # the middle 10x10 is white, the sides black
  assert decode_image(png_bytes(image), ImagePolicy(10)).min() == 255
  stretched = decode_image(png_bytes(image), ImagePolicy(10, crop="stretch"))
  assert stretched[:, 0].max() == 0 and stretched[:, 5].min() > 200
  with pytest.raises(ValueError, match="choose from: center, stretch"):
    ImagePolicy(10, crop="middle")


def test_every_bad_input_is_skipped_or_ignored_and_counted(tmp_path):
  write_synthetic_faces(str(tmp_path), count=3, size=16)
  good = (tmp_path / "0000.png").read_bytes()
  (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
  jpeg = io.BytesIO()
  Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(jpeg, format="JPEG")
  (tmp_path / "truncated.jpg").write_bytes(jpeg.getvalue()[:-100])
  (tmp_path / "not_an_image.jpg").write_bytes(b"hello, I am text")
  (tmp_path / "copy_of_0000.png").write_bytes(good)
  (tmp_path / "tiny.png").write_bytes(png_bytes(np.zeros((4, 4, 3), np.uint8)))
  (tmp_path / "notes.txt").write_text("not an image")
  images, report = load_images(str(tmp_path), P16)
  assert images.shape[0] == 3
  assert report.skipped_counts() == {"unreadable": 3, "duplicate": 1, "too small": 1}
  duplicates = [(name, reason) for name, category, reason in report.skipped
                if category == "duplicate"]
  assert duplicates == [(str(tmp_path / "copy_of_0000.png"),
                         f"same bytes as {tmp_path / '0000.png'}")]
  assert report.ignored == [str(tmp_path / "notes.txt")]
  summary = report.summary()
  assert summary.startswith("loaded 3 images") and "skipped 5:" in summary
  assert "1 duplicate" in summary and "3 unreadable" in summary and "1 too small" in summary
  assert "ignored 1 file(s)" in summary


def test_max_upscale_sets_what_is_too_small():
  small = png_bytes(np.zeros((8, 8, 3), np.uint8))
  assert decode_image(small, ImagePolicy(16, max_upscale=2.0)).shape == (16, 16, 3)
  with pytest.raises(Exception, match="8x8 needs more than 1x"):
    decode_image(small, ImagePolicy(16, max_upscale=1.0))


@pytest.mark.parametrize("make", ["missing", "empty", "only_text", "only_broken"])
def test_no_usable_images_is_a_clear_error(tmp_path, make):
  path = tmp_path / "data"
  if make != "missing":
    path.mkdir()
  if make == "only_text":
    (path / "a.txt").write_text("x")
  if make == "only_broken":
    (path / "a.png").write_bytes(b"not a png")
  with pytest.raises(DataError) as e:
    load_images(str(path), P16)
  message = str(e.value)
  assert str(path) in message
  if make == "only_broken":
    assert "1 unreadable" in message
  else:
    assert "--config.data.source" in message
  if make == "only_text":
    assert "a.txt" in message


@pytest.mark.skipif(REAL_FACES_ZIP is None, reason="the real anime faces are not on this machine")
def test_real_anime_faces_load():
  images, report = load_images(REAL_FACES_ZIP, ImagePolicy(64), max_images=200)
  assert images.shape == (200, 64, 64, 3) and not report.skipped
  assert 40 < images.mean() < 220 and images.std() > 20  # real pictures, not blank
