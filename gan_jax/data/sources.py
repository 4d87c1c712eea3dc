"""Training images by name: `tfds:NAME`, `folder:/path`, `zip:/path/*.zip`, or a bare path.

  tfds:anime_faces            the project's TFDS dataset (gan_jax.data.anime_faces)
  tfds:NAME[/CONFIG][:SPLIT]  any TFDS dataset already prepared in the data dir
                              (split 'train' by default), read with tfds.data_source
  folder:/path                every image below a folder
  zip:/path/a.zip, zip:'/p/*.zip'   images in one zip or a glob of zips
  /path or a glob             any of the above file forms, detected

`split` (config.data.split) picks a fixed part of any source: for TFDS the
dataset's own split; for files '' (all), 'train' or 'test', where 'test' is
every file whose name is a number divisible by 20 (the anime faces' `<id>.jpg`:
the same images as tfds:anime_faces:test) and, for other names, every 20th
file in listing order. 'train' is the rest, so evaluation has held-out images
the generator never saw.

`load_source` decodes a source once under an ImagePolicy and caches the uint8
array (and its load report) in a cache directory keyed by the source's
contents and the policy, so later runs start without decoding.
"""

import dataclasses
import hashlib
import json
import os
import re
import socket
import zipfile
from typing import Callable, List, Optional, Tuple

from absl import logging
import numpy as np

from gan_jax.data import images as images_lib
from gan_jax.data.images import Entry, ImagePolicy, LoadReport
from gan_jax.errors import DataError
from gan_jax.registry import Registry

_CACHE_FORMAT = 1  # bump when decoding changes, to invalidate old caches


@dataclasses.dataclass
class Source:
  """Where images come from: their listing and a fingerprint of their contents."""
  spec: str
  list_entries: Callable[[], Tuple[List[Entry], List[str]]]
  fingerprint: Callable[[], str]
  # {entry name: parsed tags} for sources that carry tags (tfds:anime_faces), else None
  # (data/labels.py then looks the entries' ids up in a tags.csv).
  tags: Optional[Callable[[], dict]] = None
  # The dataset's own classes (data.labels='class'), for sources that have them: a TFDS
  # ClassLabel feature, or for files the folder each image lies in below its folder or
  # zip (one folder per class). `class_names()`: the classes in label order;
  # `class_of()`: entry name -> its class name (None for an entry without one).
  class_names: Optional[Callable[[], Tuple[str, ...]]] = None
  class_of: Optional[Callable[[], Callable[[str], Optional[str]]]] = None
  # Reading its tags or classes is a pass over every record (TFDS): labels.labelled_source
  # then keeps the result in the cache directory.
  labels_read_records: bool = False
  _listing: Optional[Tuple[List[Entry], List[str]]] = None

  def entries(self) -> Tuple[List[Entry], List[str]]:
    """(image entries, names of non-image files passed over); listed once."""
    if self._listing is None:
      self._listing = self.list_entries()
    return self._listing


SOURCES: Registry[Callable[[str, dict], Source]] = Registry("data source scheme")


def _stat_fingerprint(paths: List[str]) -> str:
  """Names, sizes and modification times of files (and of everything below folders)."""
  items = []
  for path in paths:
    if os.path.isdir(path):
      for root, dirs, files in os.walk(path):
        dirs.sort()
        items += [os.path.join(root, f) for f in sorted(files)]
    else:
      items.append(path)
  stats = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in items]
  return hashlib.sha256(repr(stats).encode()).hexdigest()


SPLITS = ("", "train", "test")
HOLDOUT_MODULUS = 20  # files: 1 in 20 is held out as 'test'


def in_test_split(name: str, index: int) -> bool:
  """Whether the file `name` (index-th in listing order) belongs to the held-out 'test' split."""
  stem = os.path.splitext(os.path.basename(name.rsplit(":", 1)[-1]))[0]
  number = int(stem) if stem.isdigit() else index
  return number % HOLDOUT_MODULUS == 0


def split_entries(entries: List[Entry], split: str) -> List[Entry]:
  """The entries of `split` ('' keeps all; see the module docstring)."""
  if split not in SPLITS:
    raise DataError(f"unknown split {split!r}; choose from: '' (all), train, test")
  if not split:
    return entries
  want_test = split == "test"
  return [e for i, e in enumerate(entries) if in_test_split(e[0], i) == want_test]


def _holds_image(folder: str) -> bool:
  """Whether an image file lies anywhere below `folder` (stops at the first)."""
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    if any(images_lib.is_image_name(os.path.join(root, f)) for f in files):
      return True
  return False


def file_class_names(paths: List[str]) -> Tuple[str, ...]:
  """The classes of folders and zips, sorted: the sub-folders (of a folder) or top-level
  folders (of a zip) that hold images, over every path (one folder per class, the layout
  torchvision's ImageFolder reads)."""
  names = set()
  for path in paths:
    if os.path.isdir(path):
      names.update(e.name for e in os.scandir(path)
                   if e.is_dir() and _holds_image(e.path))
    elif zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        names.update(m.split("/", 1)[0] for m in archive.namelist()
                     if "/" in m and images_lib.is_image_name(m))
  return tuple(sorted(names))


def file_class_of(paths: List[str]) -> Callable[[str], Optional[str]]:
  """entry name -> the folder it lies in directly below its folder or zip (its class), or
  None for an image at the top level (entry names as images_lib.list_images gives them)."""
  roots = [(p + ":", "/") if zipfile.is_zipfile(p) else (os.path.join(p, ""), os.sep)
           for p in paths if os.path.isdir(p) or zipfile.is_zipfile(p)]

  def class_of(name: str) -> Optional[str]:
    for prefix, separator in roots:
      if name.startswith(prefix):
        inner = name[len(prefix):]
        return inner.split(separator, 1)[0] if separator in inner else None
    return None
  return class_of


def _file_source(spec: str, location: str, check: Optional[Callable[[List[str]], None]] = None,
                 split: str = "") -> Source:
  paths = images_lib.expand(location)
  if check is not None:
    check(paths)
  split_entries([], split)  # validates the name

  def entries():
    found, ignored = images_lib.list_images(location)
    return split_entries(found, split), ignored
  return Source(spec=spec + (f" ({split} split)" if split else ""), list_entries=entries,
                fingerprint=lambda: _stat_fingerprint(paths),
                class_names=lambda: file_class_names(paths),
                class_of=lambda: file_class_of(paths))


@SOURCES.register("folder")
def folder_source(location: str, options: dict) -> Source:
  """Every image file below a folder."""

  def check(paths):
    if paths and not os.path.isdir(paths[0]):
      raise DataError(f"folder:{location} is not a folder; use zip:{location} for a zip file")
  return _file_source(f"folder:{location}", location, check, options.get("split", ""))


@SOURCES.register("zip")
def zip_source(location: str, options: dict) -> Source:
  """Images in a zip file or a glob of zip files."""

  def check(paths):
    not_zips = [p for p in paths if not zipfile.is_zipfile(p)]
    if not_zips:
      raise DataError(f"zip:{location} matches files that are not zip archives: {not_zips[:3]}")
  return _file_source(f"zip:{location}", location, check, options.get("split", ""))


@SOURCES.register("path")
def path_source(location: str, options: dict) -> Source:
  """A folder, a zip, an image file, or a glob of them (detected)."""
  return _file_source(location, location, split=options.get("split", ""))


@SOURCES.register("tfds")
def tfds_source(location: str, options: dict) -> Source:
  """The image feature of a prepared TFDS dataset, read without TensorFlow."""
  match = re.fullmatch(r"([\w/.]+?)(?::(\w+))?", location)
  if not match:
    raise DataError(f"cannot parse tfds:{location}; expected tfds:NAME[/CONFIG][:SPLIT]")
  name, split = match.group(1), match.group(2) or options.get("split") or "train"
  if match.group(2) and options.get("split") and options["split"] != match.group(2):
    raise DataError(f"tfds:{location} names split {match.group(2)!r} but data.split is "
                    f"{options['split']!r}: give the split once")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if name.split("/")[0] == "anime_faces":
    from gan_jax.data import anime_faces  # pylint: disable=g-import-not-at-top,unused-import
  data_dir = options.get("tfds_dir") or None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(f"tfds:{name} is not a TFDS dataset name (see the TFDS catalog)") from None
  if not builder.is_prepared():
    how = ("python -m gan_jax.data.anime_faces --manual_dir=DIR_WITH_ZIPS_AND_TAGS"
           + (f" --data_dir={data_dir}" if data_dir else "")
           if name.split("/")[0] == "anime_faces" else
           f"tfds build {name}" + (f" --data_dir={data_dir}" if data_dir else "")
           + " (on a machine that can download it), then copy the data dir here")
    raise DataError(f"tfds:{name} is not prepared in {builder.data_dir}. Prepare it with: {how}")
  if split not in builder.info.splits:
    raise DataError(f"tfds:{name} has no split {split!r}; choose from: "
                    f"{', '.join(sorted(builder.info.splits))}")
  image_keys = [k for k, f in builder.info.features.items()
                if isinstance(f, tfds.features.Image)]
  if not image_keys:
    raise DataError(f"tfds:{name} has no image feature (features: "
                    f"{', '.join(builder.info.features)})")
  key = "image" if "image" in image_keys else image_keys[0]

  def entries():
    source = builder.as_data_source(split=split, decoders={key: tfds.decode.SkipDecoding()})
    return [(f"{name}:{split}[{i}]", (lambda i=i: source[i][key]))
            for i in range(len(source))], []

  def fingerprint():
    info = os.path.join(builder.data_dir, "dataset_info.json")
    with open(info, "rb") as f:
      return hashlib.sha256(f.read() + split.encode()).hexdigest()

  tag_keys = [k for k in ("hair_color", "hair_length", "eye_color")
              if k in builder.info.features]

  def tags():
    """{entry name: {tag key: [class names]}} of the tagged examples (anime_faces' features)."""
    source = builder.as_data_source(split=split, decoders={key: tfds.decode.SkipDecoding()})
    names = {k: builder.info.features[k].feature.names for k in tag_keys}
    out = {}
    for i in range(len(source)):
      example = source[i]
      if example.get("tagged", True):
        out[f"{name}:{split}[{i}]"] = {k: sorted(names[k][int(c)] for c in example[k])
                                       for k in tag_keys}
    return out

  class_keys = [k for k, f in builder.info.features.items()
                if isinstance(f, tfds.features.ClassLabel)]
  class_key = "label" if "label" in class_keys else (class_keys[0] if len(class_keys) == 1
                                                     else None)

  def class_names():
    if class_key is None:
      raise DataError(f"tfds:{name} has no single class label feature to condition on "
                      f"(ClassLabel features: {', '.join(class_keys) or 'none'}; all features: "
                      f"{', '.join(builder.info.features)})")
    return tuple(builder.info.features[class_key].names)

  def class_of():
    names = class_names()
    source = builder.as_data_source(split=split, decoders={key: tfds.decode.SkipDecoding()})
    table = {f"{name}:{split}[{i}]": names[int(source[i][class_key])]
             for i in range(len(source))}
    return table.get

  return Source(spec=f"tfds:{location}", list_entries=entries, fingerprint=fingerprint,
                tags=tags if tag_keys else None, class_names=class_names, class_of=class_of,
                labels_read_records=True)


def parse(spec: str) -> Tuple[str, str]:
  """'scheme:location' -> (scheme, location); a bare path -> ('path', spec)."""
  scheme, sep, location = spec.partition(":")
  if sep and re.fullmatch(r"[a-z]+", scheme):
    SOURCES.get(scheme)  # unknown scheme: ValueError listing the valid ones
    return scheme, location
  return "path", spec


def make_source(spec: str, **options) -> Source:
  """The Source that `spec` names (see the module docstring)."""
  scheme, location = parse(spec)
  if not location:
    raise DataError(f"data source {spec!r} names no location")
  return SOURCES.get(scheme)(location, options)


def default_cache_dir() -> str:
  """$XDG_CACHE_HOME/gan_jax, or ~/.cache/gan_jax."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "gan_jax")


def _cache_paths(cache_dir: str, source: Source, policy: ImagePolicy, max_images: int):
  key = json.dumps([_CACHE_FORMAT, source.spec, source.fingerprint(),
                    dataclasses.asdict(policy), max_images], sort_keys=True)
  digest = hashlib.sha256(key.encode()).hexdigest()[:16]
  slug = re.sub(r"[^A-Za-z0-9]+", "_", source.spec).strip("_")[-48:]
  stem = os.path.join(cache_dir, f"{slug}-{policy.size}px-{digest}")
  return stem + ".npy", stem + ".json"


def decode_source(source: Source, policy: ImagePolicy, max_images: int = 0, *,
                  cache_dir: Optional[str] = None,
                  use_cache: bool = True) -> Tuple[np.ndarray, LoadReport]:
  """The usable images of `source` as uint8 (N, size, size, 3), decoded once and cached."""
  if not use_cache:
    entries, ignored = source.entries()
    return images_lib.decode_all(entries, policy, source.spec, max_images, ignored)
  array_path, report_path = _cache_paths(cache_dir or default_cache_dir(), source, policy,
                                         max_images)
  if os.path.exists(array_path) and os.path.exists(report_path):
    with open(report_path) as f:
      report = LoadReport(**json.load(f))
    report.skipped = [tuple(s) for s in report.skipped]
    logging.info("using decoded images cached in %s", array_path)
    return np.load(array_path, mmap_mode="r"), report
  entries, ignored = source.entries()
  array, report = images_lib.decode_all(entries, policy, source.spec, max_images, ignored)
  os.makedirs(os.path.dirname(array_path), exist_ok=True)
  # A temporary name of this process's own: the processes of a multi-process run may share
  # the cache directory and decode at the same time.
  suffix = f".{socket.gethostname()}.{os.getpid()}.tmp"
  for path, write in ((array_path, lambda f: np.save(f, array)),
                      (report_path, lambda f: f.write(json.dumps(report.to_dict()).encode()))):
    with open(path + suffix, "wb") as f:
      write(f)
    os.replace(path + suffix, path)
  return array, report


def load_source(spec: str, policy: ImagePolicy, max_images: int = 0, *,
                cache_dir: Optional[str] = None, use_cache: bool = True,
                tfds_dir: str = "", split: str = "") -> Tuple[np.ndarray, LoadReport]:
  """The usable images of `split` of the source `spec` names (see decode_source)."""
  return decode_source(make_source(spec, tfds_dir=tfds_dir, split=split), policy, max_images,
                       cache_dir=cache_dir, use_cache=use_cache)
