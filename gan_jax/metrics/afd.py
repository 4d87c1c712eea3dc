"""Anime-face detection rate (AFD): the fraction of images in which a face is found.

The course homework's metric: run nagadomi's anime-face detector (the
`animeface` package, its model ships in the wheel) on each generated image
and count the images with at least one face. The detector was made for
larger pictures, so the rate depends heavily on the preprocessing. Measured
on the first 1,000 real 64x64 faces of a zip (Pillow 11.3):

                                                     faces64-000  faces64-004
  default: upscale 64 -> 96 (bicubic), pad 48 white      0.893        0.989
  native 64x64, no padding (upscale=None, pad=0)         0.183        0.080
  uniform noise (1,000 images)                                 0.0

Results carry their protocol (detector version, upscale, pad, n) so numbers
are compared only under the same one.

`animeface` 2.0.3 silently finds no faces with Pillow >= 12, so detection
refuses to run there. On such a machine, save the samples as PNGs and compute
the rate on a host with Pillow < 12:

  python -m gan_jax.metrics.afd WORKDIR/samples [--tile=64] [--upscale=96] [--pad=48]

(`--tile` splits grid PNGs such as samples/step_*.png into their images.)
Detection costs ~12 ms of CPU per face image (default protocol; ~50 ms for
noise, where more candidates are examined) and holds the GIL, so threads do
not help; the optional process pool (`processes`) spreads images over cores.
"""

import glob
import importlib
import math
import multiprocessing
import os
import sys
from typing import Any, Dict, List, Optional

import numpy as np
from PIL import Image
from PIL import ImageOps

from gan_jax.errors import UserError

DEFAULT_UPSCALE = 96
DEFAULT_PAD = 48
# The first Pillow major version with which animeface 2.0.3 finds no faces.
BROKEN_PILLOW_MAJOR = 12
INSTALL_HINT = 'pip install animeface "pillow<12"'


class DetectorError(UserError):
  """The anime-face detector cannot run on this machine (missing, or a broken Pillow)."""


def _pillow_version() -> str:
  import PIL  # pylint: disable=g-import-not-at-top
  return PIL.__version__


def detector_problem() -> Optional[str]:
  """Why the detector cannot run here (a message naming the fix), or None when it can."""
  pillow = _pillow_version()
  if int(pillow.split(".")[0]) >= BROKEN_PILLOW_MAJOR:
    return (f"animeface finds no faces with Pillow {pillow} (>= {BROKEN_PILLOW_MAJOR}): install "
            f'"pillow<{BROKEN_PILLOW_MAJOR}" ({INSTALL_HINT}), or save the images as PNGs and run '
            "`python -m gan_jax.metrics.afd FOLDER` on a machine that has it")
  try:
    importlib.import_module("animeface")
  except ImportError:
    return f"the anime-face detector is not installed: {INSTALL_HINT}"
  return None


def _detector():
  problem = detector_problem()
  if problem is not None:
    raise DetectorError(problem)
  return importlib.import_module("animeface")


def detector_name() -> str:
  """'animeface <version>' of the installed detector package."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  return f"animeface {metadata.version('animeface')}"


def prepare(image: np.ndarray, upscale: Optional[int] = DEFAULT_UPSCALE,
            pad: int = DEFAULT_PAD) -> Image.Image:
  """The PIL image the detector sees: uint8 (H, W, C) resized to upscale x upscale (bicubic), padded white."""
  picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  if upscale is not None and picture.size != (upscale, upscale):
    picture = picture.resize((upscale, upscale), Image.Resampling.BICUBIC)
  if pad:
    picture = ImageOps.expand(picture, border=pad, fill=255 if picture.mode == "L" else (255, 255, 255))
  return picture


def _detect_chunk(args) -> List[bool]:
  """Worker: whether a face is found in each image of one chunk."""
  images, upscale, pad = args
  animeface = _detector()
  return [len(animeface.detect(prepare(image, upscale, pad))) > 0 for image in images]


def _check_images(images) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be (N, H, W, 1 or 3), got shape {images.shape}")
  if images.dtype != np.uint8:
    raise ValueError(f"images must be uint8 (e.g. sampling.to_uint8), got {images.dtype}")
  if images.shape[0] == 0:
    raise ValueError("no images: the detection rate of an empty set is undefined")
  return images


def detect_faces(images, upscale: Optional[int] = DEFAULT_UPSCALE, pad: int = DEFAULT_PAD,
                 processes: int = 1) -> np.ndarray:
  """(N,) bool: whether the detector finds at least one face in each uint8 (N, H, W, C) image.

  `upscale` is the square side the images are resized to (None: native size),
  `pad` the white border added on each side. processes > 1 spreads chunks of
  images over that many worker processes (spawned, so safe next to JAX).
  Raises ValueError for empty or non-uint8 input, DetectorError when the
  detector cannot run here.
  """
  images = _check_images(images)
  _detector()
  if processes <= 1:
    return np.array(_detect_chunk((images, upscale, pad)), bool)
  chunk = max(1, math.ceil(len(images) / (4 * processes)))
  chunks = [(images[i:i + chunk], upscale, pad) for i in range(0, len(images), chunk)]
  with multiprocessing.get_context("spawn").Pool(processes) as pool:
    found = pool.map(_detect_chunk, chunks)
  return np.array([f for part in found for f in part], bool)


def detection_rate(images, upscale: Optional[int] = DEFAULT_UPSCALE, pad: int = DEFAULT_PAD,
                   processes: int = 1) -> Dict[str, Any]:
  """AFD with its protocol: {'rate': fraction of images with a detected face, 'detector', ...}.

  A flat JSON-serialisable dict: rate, then the protocol: detector
  ('animeface 2.0.3'), upscale, resample, pad, pad_fill, n and the Pillow
  version. See detect_faces for the arguments; empty input raises ValueError.
  """
  found = detect_faces(images, upscale, pad, processes)
  return {"rate": float(found.mean()), "detector": detector_name(), "upscale": upscale,
          "resample": "bicubic", "pad": pad, "pad_fill": "white", "n": int(found.size),
          "pillow": _pillow_version()}


def split_grid(grid: np.ndarray, tile: int, pad: int = 2) -> np.ndarray:
  """The (N, tile, tile, C) images of a grid made by writers.make_grid(images, pad=pad).

  Trailing cells that are entirely white (the grid's unused cells) are dropped.
  """
  grid = np.asarray(grid)
  if grid.ndim == 2:
    grid = grid[..., None]
  height, width = grid.shape[:2]
  step = tile + pad
  if (height - pad) % step or (width - pad) % step or height < step + pad or width < step + pad:
    raise ValueError(f"a {height}x{width} picture is not a grid of {tile}px tiles with {pad}px padding")
  tiles = [grid[pad + r * step:pad + r * step + tile, pad + c * step:pad + c * step + tile]
           for r in range((height - pad) // step) for c in range((width - pad) // step)]
  while len(tiles) > 1 and np.all(tiles[-1] == 255):
    tiles.pop()
  return np.stack(tiles)


def read_pngs(path: str, tile: Optional[int] = None, grid_pad: int = 2) -> np.ndarray:
  """uint8 (N, H, W, 3) images from a PNG file or a folder of them (sorted by name).

  With `tile`, each PNG is a grid (writers.make_grid) split into tile x tile
  images. All images must have the same size.
  """
  paths = sorted(glob.glob(os.path.join(path, "*.png"))) if os.path.isdir(path) else [path]
  if not paths or not os.path.isfile(paths[0]):
    raise UserError(f"no PNG files at {path}")
  images = []
  for p in paths:
    with Image.open(p) as picture:
      pixels = np.asarray(picture.convert("RGB"))
    images.extend(split_grid(pixels, tile, grid_pad) if tile else [pixels])
  sizes = sorted({image.shape for image in images})
  if len(sizes) > 1:
    raise UserError(f"images at {path} have different sizes {sizes[:3]}; pass --tile for grids")
  return np.stack(images)


def detection_rate_of_folder(path: str, upscale: Optional[int] = DEFAULT_UPSCALE,
                             pad: int = DEFAULT_PAD, tile: Optional[int] = None,
                             grid_pad: int = 2, processes: int = 1) -> Dict[str, Any]:
  """detection_rate of the PNGs at `path` (see read_pngs), with the source in the protocol."""
  result = detection_rate(read_pngs(path, tile, grid_pad), upscale, pad, processes)
  result.update(source=os.path.abspath(path), tile=tile)
  return result


def main(argv=None) -> int:
  """CLI: prints the detection rate of a PNG folder/file and its protocol as JSON."""
  import argparse  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog="python -m gan_jax.metrics.afd",
      description="Anime-face detection rate of PNG images (one image per file, or grids with --tile).")
  parser.add_argument("path", help="a folder of PNG files, or one PNG file")
  parser.add_argument("--upscale", type=int, default=DEFAULT_UPSCALE,
                      help="square side images are resized to before detection; 0: native size")
  parser.add_argument("--pad", type=int, default=DEFAULT_PAD, help="white border on each side (px)")
  parser.add_argument("--tile", type=int, default=None,
                      help="split each PNG into tile x tile images (grids from writers.make_grid, "
                      "e.g. samples/step_*.png); without it each PNG is one image")
  parser.add_argument("--grid_pad", type=int, default=2, help="padding between grid tiles (px)")
  parser.add_argument("--processes", type=int, default=1, help="worker processes for detection")
  args = parser.parse_args(argv)
  try:
    result = detection_rate_of_folder(args.path, args.upscale or None, args.pad, args.tile,
                                      args.grid_pad, args.processes)
  except (UserError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
