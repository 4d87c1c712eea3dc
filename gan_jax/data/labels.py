"""Class labels for conditional GANs: which label sets exist, and each image's label.

`config.data.labels` names a label set ('' for none, the default). A label is
one integer class per head, so a labelled batch carries int32 labels of shape
(..., num_heads) beside its images:

  anime_hair_eyes   (hair colour, eye colour) of the anime faces: classes are
                    the indices in anime_tags.HAIR_COLORS / EYE_COLORS (13 each).
                    Only images with exactly one hair colour tag and exactly one
                    eye colour tag are used; the others are dropped and counted.

  class             the dataset's own classes (one head): a TFDS dataset's class
                    label feature (`label`, or its only ClassLabel feature), or
                    for `folder:`, `zip:` and path sources the folder each image
                    lies in, one folder per class (`root/<class>/.../x.png`, the
                    layout torchvision's ImageFolder reads); classes are the
                    folder names, sorted. Images at the top level are dropped.
                    A run records the class names it trained with in its saved
                    config (`data.classes`, train.with_recorded_classes), so sampling
                    and evaluating its checkpoints name the same classes without
                    reading them from the data again.

Where an image's tags come from: a `tfds:anime_faces` source carries them as
features (Source.tags); for `zip:`, `folder:` and path sources each entry's
name is `<id>.jpg` and the id is looked up in tags.csv (`config.data.tags_path`,
by default the tags.csv beside the zips or in the folder).

`decode_labelled` decodes the labelled images of a source (through the same
cache as unlabelled data) and returns their labels in the same order, so the
feeders can gather images and labels with one index.
"""

import dataclasses
import hashlib
import json
import os
import socket
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from gan_jax.data import anime_tags, images as images_lib, sources
from gan_jax.data.images import ImagePolicy, LoadReport
from gan_jax.errors import ConfigError, DataError
from gan_jax.registry import Registry

Tags = Dict[str, List[str]]  # anime_tags.parse_tags output


class LabeledBatch(NamedTuple):
  """A batch of images with their labels: uint8 (..., H, W, C) and int32 (..., num_heads).

  Unlabelled runs keep batches as a plain image array."""
  images: object
  labels: object


@dataclasses.dataclass(frozen=True)
class LabelSet:
  """A label set: named heads, each a tuple of class names, read from parsed tags."""
  name: str
  heads: Tuple[Tuple[str, Tuple[str, ...]], ...]  # ((tag key, class names), ...)
  # Labels from the source's own classes (Source.class_names / class_of) rather than tags;
  # the registered entry has no heads: label_set_of fills them in from the source.
  from_classes: bool = False

  @property
  def num_classes(self) -> Tuple[int, ...]:
    """Classes per head."""
    return tuple(len(classes) for _, classes in self.heads)

  @property
  def head_names(self) -> Tuple[str, ...]:
    """The heads' tag keys, e.g. ('hair_color', 'eye_color')."""
    return tuple(key for key, _ in self.heads)

  def label_of(self, tags: Optional[Tags]) -> Optional[Tuple[int, ...]]:
    """The class index per head, or None unless `tags` has exactly one class of every head."""
    if tags is None:
      return None
    out = []
    for key, classes in self.heads:
      values = tags.get(key, [])
      if len(values) != 1 or values[0] not in classes:
        return None
      out.append(classes.index(values[0]))
    return tuple(out)

  def describe(self, label: Sequence[int]) -> str:
    """[3, 10] -> 'blue hair_color, red eye_color'."""
    return ", ".join(f"{classes[int(i)]} {key}" for (key, classes), i in zip(self.heads, label))


LABEL_SETS: Registry[LabelSet] = Registry("label set")
LABEL_SETS.register("anime_hair_eyes")(LabelSet(
    "anime_hair_eyes", (("hair_color", anime_tags.HAIR_COLORS),
                        ("eye_color", anime_tags.EYE_COLORS))))


LABEL_SETS.register("class")(LabelSet("class", (), from_classes=True))


def get_label_set(name: str) -> Optional[LabelSet]:
  """The LabelSet `config.data.labels` names, or None for ''; ValueError listing the choices."""
  return LABEL_SETS.get(name) if name else None


def _class_source(data_config) -> sources.Source:
  """config.data's source, for its classes (which do not depend on the split; the configured
  one is named so that a TFDS dataset without a 'train' split opens)."""
  return sources.make_source(data_config.source, tfds_dir=data_config.get("tfds_dir", ""),
                             split=data_config.get("split", ""))


def label_set_of(data_config) -> Optional[LabelSet]:
  """The label set of `config.data` (None for unconditional data or configs without the field);
  for 'class', with the classes a saved run recorded (data.classes) or else the source's
  (DataError if it has none)."""
  label_set = get_label_set(data_config.get("labels", ""))
  if label_set is None or not label_set.from_classes:
    return label_set
  names = tuple(data_config.get("classes", None) or ())  # a saved run's record
  if names:
    return dataclasses.replace(label_set, heads=(("class", names),))
  source = _class_source(data_config)
  names = source.class_names() if source.class_names is not None else ()
  if not names:
    raise DataError(
        f"data.labels='class' needs the images' classes, but {source.spec} has none: put each "
        "class's images in a folder of its own (root/<class>/*.png, in a folder or a zip) or "
        "use a TFDS dataset with a class label feature")
  return dataclasses.replace(label_set, heads=(("class", names),))


def entry_id(name: str) -> Optional[int]:
  """The numeric id of an entry named '<...>/<id>.jpg' (or 'a.zip:<id>.jpg'), else None."""
  stem = os.path.splitext(os.path.basename(name.rsplit(":", 1)[-1]))[0]
  return int(stem) if stem.isdigit() else None


def default_tags_path(spec: str) -> str:
  """Where tags.csv is looked for when data.tags_path is '': beside the (first) zip, or in
  the folder (or beside it)."""
  scheme, location = sources.parse(spec)
  paths = images_lib.expand(location) if scheme != "tfds" else []
  if not paths:
    return ""
  first = paths[0]
  folder = first if os.path.isdir(first) else os.path.dirname(first)
  for candidate in (os.path.join(folder, "tags.csv"),
                    os.path.join(os.path.dirname(folder), "tags.csv")):
    if os.path.isfile(candidate):
      return candidate
  return os.path.join(folder, "tags.csv")


def _tags_from(source: sources.Source, label_set: LabelSet, data_config) -> str:
  """Where the labels of `source` come from (reads nothing but the file system): its classes,
  its tag features, or a tags.csv path; DataError when there is nowhere."""
  if label_set.from_classes:
    if source.class_of is None:
      raise DataError(f"{source.spec} has no classes (data.labels='class')")
    return f"the classes of {source.spec}"
  if source.tags is not None:
    return f"the {source.spec} tag features"
  path = data_config.get("tags_path", "") or default_tags_path(data_config.source)
  if not path or not os.path.isfile(path):
    raise DataError(
        f"data.labels={data_config.labels!r} needs the images' tags, but there is no tags file "
        f"at {path or '(nothing to look beside)'}: set config.data.tags_path to the tags.csv "
        "(columns id,tags) of the images named <id>.jpg")
  return path


def _tag_lookup(source: sources.Source, label_set: LabelSet,
                tags_from: str) -> Callable[[str], Optional[Tags]]:
  """entry name -> tags or None (`tags_from`: _tags_from's); for a label set of the source's
  own classes, an entry's 'tags' are {'class': [its class]}. May read the whole dataset."""
  if label_set.from_classes:
    class_of = source.class_of()
    return lambda name: {"class": [class_of(name)]} if class_of(name) is not None else None
  if source.tags is not None:
    return source.tags().get
  table = anime_tags.read_tags(tags_from)
  return lambda name: table.get(entry_id(name)) if entry_id(name) is not None else None


@dataclasses.dataclass
class LabelReport:
  """How many entries of a source had a usable label, and why the others were dropped."""
  label_set: str
  tags_from: str
  num_entries: int = 0
  num_labelled: int = 0
  num_untagged: int = 0  # no id, or no line in the tags (classes: not in a class folder)
  from_classes: bool = False  # labels are the source's own classes

  def summary(self) -> str:
    """One clause for the pipeline's summary line."""
    other = self.num_entries - self.num_labelled - self.num_untagged
    if self.from_classes:
      unknown = f" and {other} of classes the run does not know" if other else ""
      return (f"labels {self.label_set} from {self.tags_from}: kept {self.num_labelled} of "
              f"{self.num_entries} images; dropped {self.num_untagged} outside the class "
              f"folders{unknown}")
    return (f"labels {self.label_set} from {self.tags_from}: kept {self.num_labelled} of "
            f"{self.num_entries} images (exactly one tag per head); dropped {self.num_untagged} "
            f"untagged and {other} without exactly one class per head")


def _listing_cache_path(source: sources.Source, label_set: LabelSet, data_config,
                        fingerprint: Callable[[], str]) -> Optional[str]:
  """Where labelled_source keeps which entries are labelled, and how; None when data.cache is
  off or the labels cost no pass over the data (tags.csv, folder names)."""
  if not data_config.get("cache", True) or not source.labels_read_records:
    return None
  cache_dir = data_config.get("cache_dir", "") or sources.default_cache_dir()
  digest = hashlib.sha256(json.dumps([source.spec, fingerprint()]).encode()).hexdigest()[:16]
  return os.path.join(cache_dir, f"labels-{label_set.name}-{digest}.npz")


def labelled_source(source: sources.Source, label_set: LabelSet, data_config
                    ) -> Tuple[sources.Source, Dict[str, Tuple[int, ...]], LabelReport]:
  """(a Source of only the labelled entries, {entry name: label}, report).

  The new source's spec names the label set and its fingerprint covers the
  tags and the label set's classes, so the decode cache keeps labelled and
  unlabelled sets (and sets of other classes) apart. Which entries are
  labelled, and their labels, are kept in the decode cache's directory under
  that fingerprint (data.cache) when reading them is a pass over every record (TFDS
  datasets), so that a later run lists the source but reads no record for them.
  """
  tags_from = _tags_from(source, label_set, data_config)
  tags_fingerprint = (sources._stat_fingerprint([tags_from]) if os.path.isfile(tags_from)
                      else tags_from)
  # The classes themselves too: which images are kept depends on them (a run's recorded
  # classes may be fewer than the data's).
  heads_fingerprint = hashlib.sha256(repr(label_set.heads).encode()).hexdigest()

  def fingerprint():
    return source.fingerprint() + tags_fingerprint + heads_fingerprint
  entries, ignored = source.entries()
  report = LabelReport(label_set.name, tags_from, num_entries=len(entries),
                       from_classes=label_set.from_classes)
  cache_path = _listing_cache_path(source, label_set, data_config, fingerprint)
  if cache_path is not None and os.path.isfile(cache_path):
    with np.load(cache_path) as cached:
      positions, label_rows = cached["positions"], cached["labels"]
      report.num_untagged = int(cached["num_untagged"])
  else:
    lookup = _tag_lookup(source, label_set, tags_from)
    positions, label_rows = [], []
    for i, (name, _) in enumerate(entries):
      tags = lookup(name)
      label = label_set.label_of(tags)
      if tags is None:
        report.num_untagged += 1
      elif label is not None:
        positions.append(i)
        label_rows.append(label)
    positions = np.array(positions, np.int64)
    label_rows = np.array(label_rows, np.int32).reshape(len(positions), len(label_set.heads))
    if cache_path is not None and len(positions):
      os.makedirs(os.path.dirname(cache_path), exist_ok=True)
      temporary = f"{cache_path}.{socket.gethostname()}.{os.getpid()}.tmp.npz"
      np.savez(temporary, positions=positions, labels=label_rows,
               num_untagged=report.num_untagged)
      os.replace(temporary, cache_path)
  kept = [entries[i] for i in positions]
  labels = {entries[i][0]: tuple(int(c) for c in row) for i, row in zip(positions, label_rows)}
  report.num_labelled = len(kept)
  if not kept:
    raise DataError(f"no image of {source.spec} has a label of {label_set.name} "
                    f"({report.summary()})"
                    + ("" if label_set.from_classes else "; check config.data.tags_path"))
  filtered = sources.Source(
      spec=f"{source.spec} [labels {label_set.name}]", list_entries=lambda: (kept, ignored),
      fingerprint=fingerprint)
  return filtered, labels, report


def loaded_names(entries: Sequence[images_lib.Entry], report: LoadReport) -> List[str]:
  """The names of the entries that became the decoded array's rows, in order: the first
  `num_loaded` entries that were not skipped (what images.decode_all keeps)."""
  skipped = {name for name, _, _ in report.skipped}
  return [name for name, _ in entries if name not in skipped][:report.num_loaded]


def labels_of(names: Sequence[str], by_name: Dict[str, Tuple[int, ...]],
              label_set: LabelSet) -> np.ndarray:
  """int32 (len(names), heads): the label of each entry name (labelled_source's `by_name`)."""
  return np.array([by_name[name] for name in names],
                  np.int32).reshape(len(names), len(label_set.heads))


def decode_labelled_source(filtered: sources.Source, by_name: Dict[str, Tuple[int, ...]],
                           label_set: LabelSet, policy: ImagePolicy, max_images: int = 0, *,
                           cache_dir: Optional[str] = None, use_cache: bool = True
                           ) -> Tuple[np.ndarray, np.ndarray, LoadReport]:
  """(uint8 images (N, size, size, 3), int32 labels (N, num_heads), load report) of a
  labelled_source's (filtered, by_name), decoded once and cached like sources.decode_source."""
  images, report = sources.decode_source(filtered, policy, max_images, cache_dir=cache_dir,
                                         use_cache=use_cache)
  names = loaded_names(filtered.entries()[0], report)
  if len(names) != len(images):
    raise DataError(f"internal: {len(images)} decoded images but {len(names)} names "
                    f"for {filtered.spec}; clear the cache in {cache_dir}")
  return images, labels_of(names, by_name, label_set), report


def decode_labelled(source: sources.Source, label_set: LabelSet, data_config, policy: ImagePolicy,
                    max_images: int = 0, *, cache_dir: Optional[str] = None, use_cache: bool = True
                    ) -> Tuple[np.ndarray, np.ndarray, LoadReport, LabelReport]:
  """(uint8 images (N, size, size, 3), int32 labels (N, num_heads), load report, label report)
  of the labelled images of `source`, decoded once and cached like sources.decode_source."""
  filtered, by_name, label_report = labelled_source(source, label_set, data_config)
  images, labels, report = decode_labelled_source(filtered, by_name, label_set, policy,
                                                  max_images, cache_dir=cache_dir,
                                                  use_cache=use_cache)
  return images, labels, report, label_report


def check_labels(labels: np.ndarray, label_set: LabelSet) -> None:
  """ConfigError unless `labels` is int (N, heads) with every class in range."""
  labels = np.asarray(labels)
  if labels.ndim != 2 or labels.shape[1] != len(label_set.heads):
    raise ConfigError(f"labels of {label_set.name} are (N, {len(label_set.heads)}), "
                      f"got {labels.shape}")
  if labels.size and ((labels < 0).any() or (labels >= np.array(label_set.num_classes)).any()):
    raise ConfigError(f"labels out of range for {label_set.name} {label_set.num_classes}")
