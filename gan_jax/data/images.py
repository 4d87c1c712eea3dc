"""Images from a folder, a zip, or a glob of either, decoded once into a uint8 array.

`load_images(spec, size)` accepts:
  /path/to/folder           every image file below it (recursively)
  /path/to/images.zip       every image member of the zip
  '/path/*.zip', '/p/*.png' a glob of zips, folders or image files
Images are converted to RGB, centre-cropped to a square and resized (bicubic,
antialiased) to size x size. Files that cannot be decoded are skipped and
counted in one summary line; nothing is dropped silently.
"""

import concurrent.futures
import dataclasses
import functools
import glob
import io
import os
import zipfile
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image

from gan_jax.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_CHUNK = 512  # images decoded per batch of thread-pool work


@dataclasses.dataclass
class LoadReport:
  """What `load_images` read: counts, and a few examples of skipped files."""
  spec: str
  num_found: int = 0
  num_loaded: int = 0
  skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, reason)

  def summary(self) -> str:
    """One line: how many images were loaded from where, and what was skipped."""
    line = f"loaded {self.num_loaded} images from {self.spec}"
    if self.skipped:
      name, reason = self.skipped[0]
      line += (f"; skipped {len(self.skipped)} unreadable file(s), "
               f"e.g. {name}: {reason}")
    return line


def _is_image_name(name: str) -> bool:
  return (name.lower().endswith(IMAGE_EXTENSIONS)
          and not os.path.basename(name).startswith("._")
          and "__MACOSX" not in name)


def _read_file(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _entries_of(path: str) -> List[Tuple[str, Callable[[], bytes]]]:
  """(display name, bytes reader) of every image in a folder, zip or single file."""
  if os.path.isdir(path):
    names = []
    for root, dirs, files in os.walk(path):
      dirs.sort()
      names += [os.path.join(root, f) for f in sorted(files) if _is_image_name(f)]
    return [(n, functools.partial(_read_file, n)) for n in names]
  if zipfile.is_zipfile(path):
    archive = zipfile.ZipFile(path)
    members = sorted(m for m in archive.namelist() if _is_image_name(m))
    return [(f"{path}:{m}", (lambda m=m: archive.read(m))) for m in members]
  if _is_image_name(path):
    return [(path, functools.partial(_read_file, path))]
  return []


def list_images(spec: str) -> List[Tuple[str, Callable[[], bytes]]]:
  """Every image that `spec` names, in a deterministic order; DataError if none."""
  spec = os.path.expanduser(spec)
  paths = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
  paths = [p for p in paths if os.path.exists(p)]
  entries = [e for p in paths for e in _entries_of(p)]
  if not entries:
    what = ("nothing matches that path" if not paths else
            f"{len(paths)} path(s) matched but held no {'/'.join(IMAGE_EXTENSIONS)} images")
    raise DataError(
        f"no training images found at {spec!r}: {what}. Point the run at your "
        "images with --config.data.path=PATH, where PATH is a folder of images, a "
        ".zip of images, or a glob such as '/data/faces/*.zip'.")
  return entries


def decode_image(data: bytes, size: int) -> np.ndarray:
  """Encoded image bytes -> uint8 (size, size, 3): RGB, centre-cropped, resized."""
  with Image.open(io.BytesIO(data)) as image:
    image = image.convert("RGB")
  w, h = image.size
  if w != h:
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
  if image.size != (size, size):
    image = image.resize((size, size), Image.Resampling.BICUBIC)
  return np.asarray(image, dtype=np.uint8)


def _decode_or_reason(data: bytes, size: int):
  try:
    return decode_image(data, size)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    return f"{type(e).__name__}: {e}"


def load_images(spec: str, size: int, max_images: int = 0,
                num_threads: Optional[int] = None) -> Tuple[np.ndarray, LoadReport]:
  """All images `spec` names as uint8 (N, size, size, 3), and a report.

  `max_images` > 0 keeps the first that many readable images (in listing
  order). Raises DataError if no image can be read.
  """
  entries = list_images(spec)
  report = LoadReport(spec=spec, num_found=len(entries))
  limit = len(entries) if max_images <= 0 else min(max_images, len(entries))
  out = np.empty((limit, size, size, 3), np.uint8)
  workers = num_threads or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for start in range(0, len(entries), _CHUNK):
      chunk = entries[start:start + _CHUNK]
      blobs = [read() for _, read in chunk]
      for (name, _), result in zip(chunk, pool.map(lambda b: _decode_or_reason(b, size), blobs)):
        if isinstance(result, str):
          report.skipped.append((name, result))
        elif report.num_loaded < limit:
          out[report.num_loaded] = result
          report.num_loaded += 1
      if report.num_loaded >= limit:
        break
  if report.num_loaded == 0:
    raise DataError(f"none of the {len(entries)} files at {spec!r} could be read as "
                    f"an image; {report.summary()}")
  return out[:report.num_loaded], report
