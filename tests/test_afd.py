"""Anime-face detection rate: real faces found, noise not, and clear errors where it cannot run.

The real-face tests need /work/shared/data/anime-faces (absent in CI: they skip
there) and the detector (`animeface` with Pillow < 12).
"""

import io
import json
import os
import sys
import zipfile

import numpy as np
from PIL import Image
import PIL
import pytest

from conftest import REAL_FACES_ZIP
from gan_jax import writers
from gan_jax.errors import UserError
from gan_jax.metrics import afd

needs_real_faces = pytest.mark.skipif(REAL_FACES_ZIP is None, reason="the real anime faces are not here")


def test_the_detector_can_run_here():
  """requirements.txt installs animeface and Pillow < 12: the detector tests below need both."""
  assert afd.detector_problem() is None


def real_faces(count: int) -> np.ndarray:
  """The first `count` faces (by file name) of the smallest real zip, uint8 (N, 64, 64, 3)."""
  with zipfile.ZipFile(REAL_FACES_ZIP) as archive:
    names = sorted(archive.namelist())[:count]
    return np.stack([np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in names])


def noise(count: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


@needs_real_faces
def test_real_faces_are_detected_with_the_default_protocol():
  faces = real_faces(200)
  result = afd.detection_rate(faces)
  # Measured on 1,000 faces: 0.99 for faces64-004 (the test zip), 0.89 for faces64-000.
  assert 0.8 <= result["rate"] <= 1.0
  assert result["detector"].startswith("animeface ")
  assert {k: result[k] for k in ("upscale", "pad", "n")} == {"upscale": 96, "pad": 48, "n": 200}
  native = afd.detection_rate(faces, upscale=None, pad=0)
  assert native["rate"] < 0.4 and native["upscale"] is None
  assert afd.detection_rate(faces, upscale=64, pad=0)["rate"] == native["rate"]
  assert json.loads(json.dumps(result)) == result


def test_noise_has_no_faces():
  result = afd.detection_rate(noise(16))
  assert result["rate"] == 0.0 and result["n"] == 16
  gray = noise(4)[..., :1]
  assert afd.detection_rate(gray)["rate"] == 0.0


def test_worker_pool_gives_the_same_answers():
  images = real_faces(12) if REAL_FACES_ZIP is not None else noise(6)
  np.testing.assert_array_equal(afd.detect_faces(images, processes=2), afd.detect_faces(images))


def test_pillow_12_is_refused(monkeypatch):
  monkeypatch.setattr(PIL, "__version__", "12.0.0")
  assert "pillow<12" in afd.detector_problem()
  with pytest.raises(UserError, match="pillow<12"):
    afd.detection_rate(noise(2))


def test_missing_detector_names_the_install_command(monkeypatch):
  monkeypatch.setattr(PIL, "__version__", "11.3.0")
  monkeypatch.setitem(sys.modules, "animeface", None)  # import animeface -> ImportError
  with pytest.raises(afd.DetectorError, match='pip install animeface "pillow<12"'):
    afd.detect_faces(noise(2))


def test_bad_input_is_a_value_error():
  with pytest.raises(ValueError, match="empty"):
    afd.detection_rate(np.zeros((0, 64, 64, 3), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    afd.detection_rate(np.zeros((2, 64, 64, 3), np.float32))
  with pytest.raises(ValueError, match="shape"):
    afd.detection_rate(np.zeros((64, 64, 3), np.uint8))


def test_prepare_upscales_and_pads_white():
  image = noise(1)[0]
  picture = afd.prepare(image)
  assert picture.size == (96 + 2 * 48,) * 2 and picture.mode == "RGB"
  pixels = np.asarray(picture)
  assert np.all(pixels[:48] == 255) and np.all(pixels[:, -48:] == 255)
  np.testing.assert_array_equal(np.asarray(afd.prepare(image, upscale=None, pad=0)), image)
  assert afd.prepare(image[..., :1], upscale=80, pad=3).size == (86, 86)


def test_split_grid_inverts_make_grid():
  images = noise(7)[:, :8, :8]
  grid = writers.make_grid(images)  # 3 x 3 cells, the last two empty
  np.testing.assert_array_equal(afd.split_grid(grid, 8), images)
  with pytest.raises(ValueError, match="not a grid"):
    afd.split_grid(grid, 9)


def write_pngs(folder, images):
  os.makedirs(folder, exist_ok=True)
  for i, image in enumerate(images):
    writers.save_png(os.path.join(folder, f"{i:03d}.png"), image)
  return str(folder)


def test_cli_prints_rate_and_protocol(tmp_path, capsys):
  images = real_faces(8) if REAL_FACES_ZIP is not None else noise(8)
  singles = write_pngs(tmp_path / "singles", images)
  grids = write_pngs(tmp_path / "grids", [writers.make_grid(images[:5]), writers.make_grid(images[5:])])
  assert afd.main([singles]) == 0
  single = json.loads(capsys.readouterr().out)
  assert afd.main([grids, "--tile=64"]) == 0
  grid = json.loads(capsys.readouterr().out)
  expected = afd.detection_rate(images)["rate"]
  assert single["rate"] == grid["rate"] == expected
  assert single["n"] == grid["n"] == 8 and grid["tile"] == 64


def test_cli_reports_errors(tmp_path, capsys, monkeypatch):
  assert afd.main([str(tmp_path)]) == 1
  assert "no PNG files" in capsys.readouterr().err
  monkeypatch.setattr(PIL, "__version__", "12.0.0")
  write_pngs(tmp_path, noise(2))
  assert afd.main([str(tmp_path)]) == 1
  assert "pillow<12" in capsys.readouterr().err
