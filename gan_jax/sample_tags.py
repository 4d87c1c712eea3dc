"""Images of a chosen label from a conditional run: python -m gan_jax.sample_tags.

  python -m gan_jax.sample_tags --workdir=workdirs/anime_tags --tags="blue hair red eyes" \
      --num=64 --out=grid.png [--step=latest|N|best] [--seed=0] [--hit_rate] \
      [--truncation=T] [--truncation_psi=PSI [--truncation_center=label]]

Restores the EMA generator of a run trained with `config.data.labels=anime_hair_eyes`
(configs/anime_tags.py) from its latest checkpoint (or --step), generates --num
faces of the requested colours from latents fixed by --seed and writes them as
one PNG grid. The request is free text in the tag vocabulary
(gan_jax/data/anime_tags.py): one hair colour and one eye colour, e.g. "blue
hair red eyes" or "blonde hair and green eyes" (hair length words are accepted
and ignored: they are not labels of the model). With --hit_rate it also prints
how often the tag classifier sees the requested colours in the samples, and on
held-out real faces with the same tags (the ceiling), as the tag_hit_rate
metric does over the whole label distribution.

--truncation=T draws z from a Gaussian truncated to [-T, T] (BigGAN's truncation
trick); --truncation_psi=PSI pulls a StyleGAN2 generator's w towards its tracked
average (configs/stylegan2_tags.py; 1: off), or with --truncation_center=label towards
the requested label's own average w (the one average over all labels lies between the
labels, so pulling towards it also pulls away from the requested colours).

A run conditioned on a dataset's own classes (`config.data.labels=class`) takes
the class name instead: --tags=cat (one name per label head, comma-separated);
--hit_rate does not apply there.
"""

import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import jax
import ml_collections
import numpy as np

from gan_jax import data as data_lib
from gan_jax import evaluate, latents, sampling, writers
from gan_jax.data import anime_tags
from gan_jax.data.labels import LabelSet
from gan_jax.errors import UserError, run_command

_TAGS_STREAM = 0x74616773  # latents of tag-conditioned samples: apart from grids and evaluation


def normalise_request(text: str) -> str:
  """'Blue hair, red eyes' -> 'blue hair and red eyes': one phrase per 'hair' / 'eyes'."""
  words = [w for w in text.lower().replace(",", " ").split() if w != "and"]
  phrases, current = [], []
  for word in words:
    word = "eyes" if word == "eye" else word
    current.append(word)
    if word in ("hair", "eyes"):
      phrases.append(" ".join(current))
      current = []
  if current:
    phrases.append(" ".join(current))  # no closing 'hair'/'eyes': parse_tags says so
  return " and ".join(phrases)


def _class_choices(classes: Sequence[str], shown: int = 20) -> str:
  more = f", ... ({len(classes)} in all)" if len(classes) > shown else ""
  return ", ".join(classes[:shown]) + more


def parse_class_request(text: str, label_set: LabelSet) -> Tuple[int, ...]:
  """The label a request names for a label set of classes (data.labels='class'): one class
  name per head, comma-separated; UserError listing the classes for an unknown name."""
  names = [part.strip() for part in text.split(",")] if text.strip() else []
  if len(names) != len(label_set.heads):
    raise UserError(f"--tags={text!r}: name {len(label_set.heads)} class(es) of the run's "
                    f"{label_set.name} labels, comma-separated, e.g. "
                    f"--tags={label_set.heads[0][1][0]!r} (classes: "
                    f"{_class_choices(label_set.heads[0][1])})")
  label = []
  for name, (key, classes) in zip(names, label_set.heads):
    if name not in classes:
      raise UserError(f"--tags: unknown {key} {name!r}; choose from: {_class_choices(classes)}")
    label.append(classes.index(name))
  return tuple(label)


def parse_request(text: str, label_set: LabelSet) -> Tuple[int, ...]:
  """The label that `text` asks for: for anime_hair_eyes (hair colour index, eye colour
  index) from free tag text, UserError naming the valid colours for an unknown word or a
  missing or repeated colour; for a set of classes, parse_class_request's."""
  if label_set.from_classes:
    return parse_class_request(text, label_set)
  choices = (f"hair colours: {', '.join(anime_tags.HAIR_COLORS)}; eye colours: "
             f"{', '.join(anime_tags.EYE_COLORS)}")
  if not text.strip():
    raise UserError(f"--tags is empty: ask for one hair and one eye colour, e.g. "
                    f"'blue hair red eyes' ({choices})")
  try:
    tags = anime_tags.parse_tags(normalise_request(text))
  except ValueError as e:
    raise UserError(f"cannot read --tags={text!r}: {e}. Write e.g. 'blue hair red eyes' "
                    f"({choices})") from None
  label = []
  for key, classes in label_set.heads:
    found = tags.get(key, [])
    what = key.replace("_", " ")
    if len(found) != 1:
      problem = "no" if not found else f"{len(found)} ({', '.join(found)})"
      raise UserError(f"--tags={text!r} names {problem} {what}s; the model needs exactly one "
                      f"({choices})")
    label.append(classes.index(found[0]))
  return tuple(label)


def restore_generator(workdir: str, step: str = "latest"):
  """(config, generator, ema_params, g_stats, step) of a conditional run's checkpoint
  (evaluate.restore_generator); UserError for an unconditional run."""
  restored = evaluate.restore_generator(workdir, step)
  if not data_lib.label_classes(restored[0].data):
    raise UserError(f"the run in {os.path.abspath(workdir)} is unconditional (config.data.labels "
                    "is empty): train with configs/anime_tags.py, biggan.py, biggan_deep.py or "
                    "stylegan2_tags.py to choose colours")
  return restored


def generate_with_label(config, generator, params: Any, stats: Any, label: Tuple[int, ...],
                        num: int, seed: int, truncation: float = 0.0,
                        truncation_psi: float = 1.0,
                        truncation_center: str = "global") -> np.ndarray:
  """uint8 (num, H, W, 3): `num` samples of `label` from latents fixed by `seed` (truncated to
  [-truncation, truncation] when > 0: sampling.fixed_latents; StyleGAN2's w truncated with
  `truncation_psi` != 1 towards the tracked average w, or with `truncation_center` 'label'
  towards the label's own, over the run's fixed centre latents: evaluate.label_center_latents),
  generated in batches of train.batch_size (BatchNorm layers see batches of their training
  size)."""
  batch = min(config.train.batch_size, num)
  batches = -(-num // batch)
  z = sampling.fixed_latents(seed, batches * batch, config.model.latent_dim,
                             config.model.latent_dist, stream=_TAGS_STREAM,
                             truncation=truncation).reshape(
                                 batches, batch, -1)
  labels = np.tile(np.asarray(label, np.int32), (batch, 1))
  center_config = ml_collections.ConfigDict(config.to_dict())
  center_config.eval.truncation_psi = truncation_psi
  center_config.eval.truncation_center = truncation_center
  center_latents = evaluate.label_center_latents(center_config)
  centers = None if center_latents is None else sampling.label_w_centers(
      generator, params, labels[:1], center_latents).repeat(batch, axis=0)
  one_batch = jax.jit(lambda p, s, z: sampling.to_uint8(
      sampling.generate(generator, p, s, z, labels=labels, truncation_psi=truncation_psi,
                        truncation_center=centers)))
  return np.concatenate([np.asarray(one_batch(params, stats, zb)) for zb in z])[:num]


def hit_rate_report(config, images: np.ndarray, label: Tuple[int, ...],
                    classifier_path: Optional[str] = None) -> Dict[str, Any]:
  """The tag classifier's hit rates on `images` generated for `label`, and on held-out real
  faces with that label (the ceiling; absent without a held-out split or such faces)."""
  from gan_jax.metrics import tag_classifier  # pylint: disable=g-import-not-at-top
  classifier = tag_classifier.load_classifier(classifier_path or config.eval.classifier_path
                                              or None)
  labels = np.tile(np.asarray(label, np.int32), (len(images), 1))
  report = {"samples": tag_classifier.hit_rates(classifier.predict(images), labels),
            "num_samples": len(images)}
  held = evaluate.heldout_source(config)
  if held is not None:
    held_config = ml_collections.ConfigDict(config.data.to_dict())
    held_config.source = held[0]
    real, real_labels, _ = data_lib.decode_split(held_config, held[1])
    same = (np.asarray(real_labels) == np.asarray(label)).all(axis=1)
    if same.any():
      report["real_ceiling"] = tag_classifier.hit_rates(classifier.predict(real[same]),
                                                        real_labels[same])
    report["num_real"] = int(same.sum())
  return report


def sample_tags(workdir: str, tags: str, num: int, out: str, step: str = "latest", seed: int = 0,
                hit_rate: bool = False, truncation: float = 0.0,
                truncation_psi: float = 1.0, truncation_center: str = "global"
                ) -> Dict[str, Any]:
  """Writes a PNG grid of `num` faces with the colours `tags` asks for, from Gaussian latents
  truncated to [-truncation, truncation] if > 0 (BigGAN's trick) and StyleGAN2's w truncated
  with `truncation_psi` if != 1 (towards the tracked average w, or the label's own with
  `truncation_center` 'label'); returns what was done (and the hit rates with `hit_rate`)."""
  if num < 1:
    raise UserError(f"--num must be >= 1, got {num}")
  config, generator, params, stats, restored = restore_generator(workdir, step)
  label_set = data_lib.label_set_of(config.data)
  label = parse_request(tags, label_set)
  try:
    latents.check_truncation(truncation, config.model.latent_dist)
  except ValueError as e:
    raise UserError(f"--truncation: {e}") from None
  try:
    sampling.check_truncation_psi(generator, truncation_psi)
  except ValueError as e:
    raise UserError(f"--truncation_psi: {e}") from None
  try:
    sampling.check_truncation_center(generator, truncation_center)
  except ValueError as e:
    raise UserError(f"--truncation_center: {e}") from None
  if hit_rate and label_set.from_classes:
    raise UserError(f"--hit_rate measures anime hair and eye colours with the tag classifier; "
                    f"this run's labels are {label_set.name!r}")
  images = generate_with_label(config, generator, params, stats, label, num, seed, truncation,
                               truncation_psi, truncation_center)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  writers.save_png(out, writers.make_grid(images))
  result = {"step": restored, "label": label_set.describe(label), "num": num, "out": out,
            "truncation": truncation, "truncation_psi": truncation_psi,
            "truncation_center": truncation_center}
  if hit_rate:
    result["hit_rate"] = hit_rate_report(config, images, label)
  return result


def main(argv):
  """The command line (absl flags)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  del argv
  f = flags.FLAGS
  writers.quiet_library_logs()
  result = run_command(
      lambda: sample_tags(f.workdir, f.tags, f.num, f.out, f.step, f.seed, f.hit_rate,
                          f.truncation, f.truncation_psi, f.truncation_center))
  print(json.dumps(result, indent=1), flush=True)


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "The conditional run's --workdir.", required=True)
  flags.DEFINE_string("tags", None, "One hair and one eye colour, e.g. 'blue hair red eyes'.",
                      required=True)
  flags.DEFINE_integer("num", 64, "Faces to generate.")
  flags.DEFINE_string("out", "tags.png", "Where to write the PNG grid.")
  flags.DEFINE_string("step", "latest", "Checkpoint step: N, latest or best.")
  flags.DEFINE_integer("seed", 0, "Seed of the latents.")
  flags.DEFINE_bool("hit_rate", False, "Also print the tag classifier's hit rates.")
  flags.DEFINE_float("truncation", 0.0, "Gaussian z truncated to [-t, t] (BigGAN's truncation "
                     "trick: more typical, less varied faces); 0: off.")
  flags.DEFINE_enum("truncation_center", "global", list(sampling.TRUNCATION_CENTERS), "Where "
                    "--truncation_psi pulls w: the tracked average w over all labels, or the "
                    "requested label's own average w.")
  flags.DEFINE_float("truncation_psi", 1.0, "StyleGAN2's truncation trick: w <- w_avg + psi "
                     "(w - w_avg) (w_avg: see --truncation_center); 1: off.")


if __name__ == "__main__":
  _define_flags()
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(main)
