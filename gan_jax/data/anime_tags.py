"""The anime faces' tag vocabulary, tag parsing and fixed train/test split.

A light module (numpy-free, no TensorFlow Datasets) shared by the TFDS builder
(`gan_jax.data.anime_faces`) and the tag classifier (`gan_jax.metrics.tag_classifier`).
"""

import csv
from typing import Dict, List

HAIR_COLORS = ("aqua", "black", "blonde", "blue", "brown", "gray", "green", "orange",
               "pink", "purple", "red", "white", "yellow")
HAIR_LENGTHS = ("long", "short")
EYE_COLORS = ("aqua", "bicolored", "black", "blue", "brown", "gray", "green", "orange",
              "pink", "purple", "red", "white", "yellow")
TEST_ID_MODULUS = 20  # ids divisible by this form the test split


def split_of(image_id: int) -> str:
  """'test' for the fixed held-out slice (id % 20 == 0), else 'train'."""
  return "test" if image_id % TEST_ID_MODULUS == 0 else "train"


def parse_tags(text: str) -> Dict[str, List[str]]:
  """'blonde long hair and purple eyes' -> {'hair_color': ['blonde'], 'hair_length': ['long'], 'eye_color': ['purple']}.

  Several colours may precede 'hair' or 'eyes'; unknown words raise ValueError.
  """
  tags = {"hair_color": [], "hair_length": [], "eye_color": []}
  for phrase in (p.strip() for p in text.split(" and ")):
    words = phrase.split()
    if not words or words[-1] not in ("hair", "eyes"):
      raise ValueError(f"cannot parse tag phrase {phrase!r} in {text!r}")
    for word in words[:-1]:
      if words[-1] == "hair" and word in HAIR_LENGTHS:
        tags["hair_length"].append(word)
      elif words[-1] == "hair" and word in HAIR_COLORS:
        tags["hair_color"].append(word)
      elif words[-1] == "eyes" and word in EYE_COLORS:
        tags["eye_color"].append(word)
      else:
        raise ValueError(f"unknown {words[-1]} word {word!r} in {text!r}")
  return {k: sorted(set(v)) for k, v in tags.items()}


def read_tags(path: str) -> Dict[int, Dict[str, List[str]]]:
  """{id: parsed tags} from tags.csv (columns id,tags)."""
  with open(path, newline="") as f:
    return {int(row["id"]): parse_tags(row["tags"]) for row in csv.DictReader(f)}
