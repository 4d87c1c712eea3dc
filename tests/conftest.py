"""Test setup: 8 virtual CPU devices (for sharding tests) and small image data."""

import glob
import os
import sys

import jax

# Must happen before any JAX computation initialises the CPU backend.
jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from configs import anime  # pylint: disable=g-import-not-at-top,wrong-import-position

# The smallest of the real anime-face zips, when this machine has them.
REAL_FACES_ZIP = sorted(glob.glob(anime.ANIME_FACES))[-1:] or [None]
REAL_FACES_ZIP = REAL_FACES_ZIP[0]


def write_synthetic_faces(folder: str, count: int = 64, size: int = 24, seed: int = 0) -> str:
  """`count` PNGs of coloured ellipses on a background ("faces" enough for a smoke run)."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size] / size
  for i in range(count):
    image = np.empty((size, size, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    cy, cx, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.15, 0.35)]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    image[inside] = rng.integers(0, 256, 3)
    Image.fromarray(image).save(os.path.join(folder, f"{i:04d}.png"))
  return folder


@pytest.fixture(scope="session")
def face_data(tmp_path_factory) -> str:
  """A data path for training tests: real anime faces if present, generated images otherwise."""
  if REAL_FACES_ZIP is not None:
    return REAL_FACES_ZIP
  return write_synthetic_faces(str(tmp_path_factory.mktemp("faces")))


@pytest.fixture
def smoke_config(face_data):
  """configs/anime.py:smoke pointed at the test data."""
  config = anime.get_config("smoke")
  config.data.path = face_data
  return config
