"""Images from a folder, a zip, or a glob of either, decoded into a uint8 array.

`list_images(spec)` accepts:
  /path/to/folder           every image file below it (recursively)
  /path/to/images.zip       every image member of the zip
  '/path/*.zip', '/p/*.png' a glob of zips, folders or image files
`decode_image` turns encoded bytes into a size x size RGB array under an
`ImagePolicy`; `decode_all` does it for a list of entries and reports what it
skipped. Every input has a defined outcome:

  grayscale, palette, CMYK, 16-bit  converted to 8-bit RGB
  transparent (RGBA, LA, palette+transparency)  composited on white
  non-square                      centre-cropped to a square (crop='center')
                                  or resized whole (crop='stretch')
  smaller than size / max_upscale skipped, counted as "too small"
  truncated or not an image       skipped, counted as "unreadable"
  byte-identical to an earlier file  skipped, counted as "duplicate"
Skips are summarised in one line (LoadReport.summary); if nothing is left,
a DataError says why.
"""

import concurrent.futures
import dataclasses
import functools
import glob
import hashlib
import io
import os
import zipfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from gan_jax.errors import DataError
from gan_jax.registry import check_choice

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CROPS = ("center", "stretch")
_CHUNK = 512  # images decoded per batch of thread-pool work

Entry = Tuple[str, Callable[[], bytes]]  # (display name, reader of the encoded bytes)


@dataclasses.dataclass(frozen=True)
class ImagePolicy:
  """How encoded images become training arrays."""
  size: int                 # output is size x size x 3
  crop: str = "center"      # 'center': centre square crop; 'stretch': resize the whole image
  max_upscale: float = 2.0  # images needing more enlargement than this are skipped

  def __post_init__(self):
    check_choice("crop", self.crop, CROPS)
    if self.size <= 0 or self.max_upscale <= 0:
      raise ValueError(f"size and max_upscale must be positive: {self}")


class SkipImage(Exception):
  """This input is skipped; `category` is how it is counted."""

  def __init__(self, category: str, reason: str):
    super().__init__(reason)
    self.category = category


@dataclasses.dataclass
class LoadReport:
  """What a load read: counts, and examples of skipped inputs."""
  spec: str
  num_found: int = 0
  num_loaded: int = 0
  skipped: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)  # name, category, reason
  ignored: List[str] = dataclasses.field(default_factory=list)  # files without an image extension

  def skipped_counts(self) -> Dict[str, int]:
    counts = {}
    for _, category, _ in self.skipped:
      counts[category] = counts.get(category, 0) + 1
    return counts

  def summary(self) -> str:
    """One line: how many images were loaded from where, and what was skipped and why."""
    line = f"loaded {self.num_loaded} images from {self.spec}"
    if self.skipped:
      parts = []
      for category, count in sorted(self.skipped_counts().items()):
        name, _, reason = next(s for s in self.skipped if s[1] == category)
        parts.append(f"{count} {category} (e.g. {name}: {reason})")
      line += f"; skipped {len(self.skipped)}: " + ", ".join(parts)
    if self.ignored:
      line += (f"; ignored {len(self.ignored)} file(s) without an image extension "
               f"(e.g. {self.ignored[0]})")
    return line

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def is_image_name(name: str) -> bool:
  """Whether a file name is an image this project reads (not a macOS resource fork)."""
  return (name.lower().endswith(IMAGE_EXTENSIONS)
          and not os.path.basename(name).startswith("._")
          and "__MACOSX" not in name)


def _read_file(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _entries_of(path: str) -> Tuple[List[Entry], List[str]]:
  """Every image in a folder, zip or single file, and the other files passed over."""
  if os.path.isdir(path):
    names = []
    for root, dirs, files in os.walk(path):
      dirs.sort()
      names += [os.path.join(root, f) for f in sorted(files)]
    return ([(n, functools.partial(_read_file, n)) for n in names if is_image_name(n)],
            [n for n in names if not is_image_name(n)])
  if zipfile.is_zipfile(path):
    archive = zipfile.ZipFile(path)
    members = sorted(m for m in archive.namelist() if not m.endswith("/"))
    return ([(f"{path}:{m}", functools.partial(archive.read, m))
             for m in members if is_image_name(m)],
            [f"{path}:{m}" for m in members if not is_image_name(m)])
  if is_image_name(path):
    return [(path, functools.partial(_read_file, path))], []
  return [], [path]


def expand(spec: str) -> List[str]:
  """The existing paths a folder/zip/file path or glob names, sorted."""
  spec = os.path.expanduser(spec)
  paths = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
  return [p for p in paths if os.path.exists(p)]


def list_images(spec: str) -> Tuple[List[Entry], List[str]]:
  """Every image that `spec` names in a deterministic order, and the non-image files
  passed over; DataError if there is no image."""
  paths = expand(spec)
  entries, ignored = [], []
  for path in paths:
    found, other = _entries_of(path)
    entries += found
    ignored += other
  if not entries:
    what = ("nothing exists at that path" if not paths else
            f"{len(paths)} path(s) matched but held no {'/'.join(IMAGE_EXTENSIONS)} images")
    raise DataError(
        f"no training images found at {spec!r}: {what}"
        + (f" (found only {', '.join(os.path.basename(i) for i in ignored[:3])})" if ignored else "")
        + ". Point the run at your images with "
        "--config.data.source=SOURCE, where SOURCE is a folder of images (folder:/path), "
        "a .zip or a glob of them (zip:'/data/faces/*.zip'), or tfds:NAME.")
  return entries, ignored


def _to_rgb(image: Image.Image) -> Image.Image:
  """8-bit RGB; transparency composited on white."""
  if image.mode == "P" and "transparency" in image.info:
    image = image.convert("RGBA")
  if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
    image = image.convert("RGBA")
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image).convert("RGB")
  if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
    array = np.asarray(image, np.float64)
    peak = 65535.0 if array.max() > 255 else 255.0
    image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
  return image.convert("RGB")


def decode_image(data: bytes, policy: ImagePolicy) -> np.ndarray:
  """Encoded image bytes -> uint8 (size, size, 3) under `policy`; raises SkipImage."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      image = _to_rgb(image)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise SkipImage("unreadable", f"{type(e).__name__}: {e}") from None
  w, h = image.size
  side = min(w, h)
  if side * policy.max_upscale < policy.size:
    raise SkipImage("too small", f"{w}x{h} needs more than {policy.max_upscale:g}x "
                    f"enlargement to {policy.size}x{policy.size}")
  if policy.crop == "center" and w != h:
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
  if image.size != (policy.size, policy.size):
    image = image.resize((policy.size, policy.size), Image.Resampling.BICUBIC)
  return np.asarray(image, dtype=np.uint8)


def _decode_or_skip(data: bytes, policy: ImagePolicy):
  try:
    return decode_image(data, policy)
  except SkipImage as e:
    return e


def decode_all(entries: Sequence[Entry], policy: ImagePolicy, spec: str, max_images: int = 0,
               ignored: Sequence[str] = (),
               num_threads: Optional[int] = None) -> Tuple[np.ndarray, LoadReport]:
  """Decodes `entries` into uint8 (N, size, size, 3) in order, skipping what cannot be used.

  `max_images` > 0 keeps the first that many usable images. Raises DataError
  if none is usable.
  """
  report = LoadReport(spec=spec, num_found=len(entries), ignored=list(ignored))
  limit = len(entries) if max_images <= 0 else min(max_images, len(entries))
  out = np.empty((limit, policy.size, policy.size, 3), np.uint8)
  first_seen: Dict[bytes, str] = {}
  workers = num_threads or min(8, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for start in range(0, len(entries), _CHUNK):
      chunk, blobs = [], []
      for name, read in entries[start:start + _CHUNK]:
        blob = read()
        digest = hashlib.blake2b(blob, digest_size=16).digest()
        if digest in first_seen:
          report.skipped.append((name, "duplicate", f"same bytes as {first_seen[digest]}"))
          continue
        first_seen[digest] = name
        chunk.append(name)
        blobs.append(blob)
      for name, result in zip(chunk, pool.map(lambda b: _decode_or_skip(b, policy), blobs)):
        if isinstance(result, SkipImage):
          report.skipped.append((name, result.category, str(result)))
        elif report.num_loaded < limit:
          out[report.num_loaded] = result
          report.num_loaded += 1
      if report.num_loaded >= limit:
        break
  if report.num_loaded == 0:
    raise DataError(f"none of the {len(entries)} images at {spec!r} could be used; "
                    f"{report.summary()}")
  return out[:report.num_loaded], report


def load_images(spec: str, policy: ImagePolicy, max_images: int = 0) -> Tuple[np.ndarray, LoadReport]:
  """All usable images that the folder/zip/glob `spec` names, and a report."""
  entries, ignored = list_images(spec)
  return decode_all(entries, policy, spec, max_images, ignored)
