"""Evaluates a run's saved checkpoints: python -m gan_jax.evaluate --workdir=W [--step=N].

  python -m gan_jax.evaluate --workdir=workdirs/anime                 # the latest checkpoint
  python -m gan_jax.evaluate --workdir=workdirs/anime --step=all      # every checkpoint kept
  python -m gan_jax.evaluate --workdir=workdirs/anime --step=best \
      --metrics=fid,kid,pr --num_samples=50000 --inception_path=/data/pt_inception-2015-12-05-6726825d.pth

For each step it writes `W/eval/step_N.json` (every metric with its protocol)
and `W/eval/step_N_samples.png` (and `..._nearest.png`, samples beside their
nearest training images, when memorisation is measured). Samples come from
the EMA generator with latents fixed by the run's seed, so checkpoints are
compared on the same z. The same code evaluates periodically during training
(`config.eval.every`, see gan_jax/train.py).
"""

import copy
import dataclasses
import functools
import json
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import data as data_lib
from gan_jax import latents, parallel, rejection, sampling, writers
from gan_jax.data import sources
from gan_jax.errors import ConfigError, DataError, UserError, run_command
from gan_jax.metrics import collapse, evaluator as evaluator_lib
from gan_jax.registry import check_choice

_EVAL_STREAM = 0x6576616c  # evaluation latents: apart from training and the progress grid
_CENTER_STREAM = 0x63656e74  # latents of the per-label average w's (label truncation centres)
_MH_STREAM = 0x6d68  # the proposals of eval.mh_steps' Metropolis-Hastings correction
# The losses eval.mh_tune_loss may tune D with: at their optimum D's logit is log p_data / p_G.
RATIO_LOSSES = ("minimax", "non_saturating")


def heldout_source(config) -> Optional[Tuple[str, str]]:
  """(source, split) of the held-out real images to compare with, or None.

  config.eval.heldout_source when set; else the 'test' split of the training
  source when training uses its 'train' split (tfds:NAME, or files with
  data.split='train', whose 'test' split is the 1 in 20 left out).
  """
  if config.eval.heldout_source:
    return config.eval.heldout_source, ""
  split = config.data.get("split", "")
  scheme, location = sources.parse(config.data.source)
  if scheme == "tfds":
    name, _, spec_split = location.partition(":")
    if (spec_split or split or "train") == "train":
      return f"tfds:{name}", "test"
  elif split == "train":
    return config.data.source, "test"
  return None


def _subset_index(count: int, num: int, seed: int):
  """The rows of a fixed random subset of `num` of `count` images (all, slice(None), if
  num <= 0 or num >= count)."""
  if 0 < num < count:
    return np.sort(np.random.default_rng(seed).choice(count, num, replace=False))
  return slice(None)


def _subset(images: np.ndarray, num: int, seed: int,
            labels: Optional[np.ndarray] = None):
  """A fixed random subset of `num` images (all if num <= 0 or larger), in memory; with
  `labels`, (images, their labels)."""
  index = _subset_index(len(images), num, seed)
  if labels is None:
    return np.asarray(images[index])
  return np.asarray(images[index]), np.asarray(labels[index])


@dataclasses.dataclass
class ReferenceSets:
  """Real images for evaluation, with their labels in conditional runs."""
  train: np.ndarray
  heldout: Optional[np.ndarray]
  description: str
  train_labels: Optional[np.ndarray] = None    # of the `train` subset
  heldout_labels: Optional[np.ndarray] = None
  label_table: Optional[np.ndarray] = None     # every training image's labels (the distribution)


def load_reference_images(config, need_heldout: bool) -> Tuple[np.ndarray, Optional[np.ndarray], str]:
  """(train images, held-out images or None, description) for `config`'s evaluation.

  Real images are decoded with the training data's policy (size, crop) and
  cache, so they look exactly like what the discriminator saw.
  """
  sets = load_reference_sets(config, need_heldout)
  return sets.train, sets.heldout, sets.description


def _load_labelled_reference(config, need_heldout: bool) -> ReferenceSets:
  """ReferenceSets of a conditional run: only labelled images, with their labels."""
  split = config.data.get("split", "")
  images, labels, _ = data_lib.decode_split(config.data, split, config.data.max_images)
  train, train_labels = _subset(images, config.eval.num_real, config.seed, labels)
  heldout = heldout_labels = None
  held = heldout_source(config)
  if need_heldout and held:
    held_config = ml_collections.ConfigDict(config.data.to_dict())
    held_config.source = held[0]
    try:
      held_images, held_labels, _ = data_lib.decode_split(held_config, held[1])
    except DataError as e:
      raise ConfigError(f"config.eval: labelled held-out images {held[0]!r} "
                        f"({held[1] or 'all'}) cannot be read ({e}); set "
                        "config.eval.heldout_source or drop the metrics that need them") from None
    heldout, heldout_labels = _subset(held_images, config.eval.num_heldout, config.seed + 1,
                                      held_labels)
  description = (config.data.source + (f" ({split} split)" if split else "")
                 + f", labels {config.data.labels}"
                 + (f", held-out {held[0]} ({held[1] or 'all'})" if heldout is not None else ""))
  return ReferenceSets(train, heldout, description, train_labels, heldout_labels, labels)


def load_reference_sets(config, need_heldout: bool) -> ReferenceSets:
  """The real images (and, in conditional runs, labels) `config`'s evaluation compares with."""
  if data_lib.toy_mixture(config.data) is not None:
    raise ConfigError("config.eval: image metrics do not apply to toy data (toy runs report "
                      "toy/modes_covered and toy/high_quality with their samples)")
  if data_lib.label_classes(config.data):
    return _load_labelled_reference(config, need_heldout)
  policy = data_lib.policy_of(config.data)
  load = functools.partial(sources.load_source, policy=policy, tfds_dir=config.data.tfds_dir,
                           cache_dir=config.data.cache_dir or None, use_cache=config.data.cache)
  split = config.data.get("split", "")
  train, _ = load(config.data.source, max_images=config.data.max_images, split=split)
  train = _subset(train, config.eval.num_real, config.seed)
  heldout, held = None, heldout_source(config)
  if need_heldout and held:
    try:
      heldout, _ = load(held[0], split=held[1])
    except DataError as e:
      raise ConfigError(f"config.eval: held-out images {held[0]!r} ({held[1] or 'all'}) cannot "
                        f"be read ({e}); set config.eval.heldout_source or drop memorisation "
                        "from config.eval.metrics") from None
    heldout = _subset(heldout, config.eval.num_heldout, config.seed + 1)
  description = config.data.source + (f" ({split} split)" if split else "") + (
      f", held-out {held[0]} ({held[1] or 'all'})" if heldout is not None else "")
  return ReferenceSets(train, heldout, description)


def tuning_images(config) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray, str]:
  """(uint8 training images, their labels or None, rows, description): D is tuned for
  config.eval.mh_tune on `rows` of the images, those outside the evaluation's reference
  subset (eval.num_real of them, load_reference_sets), so that tuning does not pull the
  samples towards the very images they are compared with; all of them when the reference
  subset is all. The images stay as decoded (memory-mapped from the decode cache when it
  has them), so only the rows drawn are read."""
  images, labels, _ = data_lib.decode_split(config.data, config.data.get("split", ""),
                                            config.data.max_images)
  outside = np.ones(len(images), bool)
  outside[_subset_index(len(images), config.eval.num_real, config.seed)] = False
  if not outside.any():
    return (images, labels, np.arange(len(images)),
            f"all {len(images)} training images (the reference set is all of them)")
  rows = np.flatnonzero(outside)
  return images, labels, rows, f"the {len(rows)} training images outside the reference set"


def eval_labels(config, label_table: Optional[np.ndarray]) -> Optional[np.ndarray]:
  """The labels the evaluation samples are generated from (conditional runs): num_samples
  draws from the training labels, fixed by the seed; None for unconditional runs."""
  if label_table is None:
    return None
  return sampling.fixed_labels(config.seed, config.eval.num_samples, label_table,
                               stream=_EVAL_STREAM)


def make_sampler(config, generator, labels: Optional[np.ndarray] = None, discriminator=None):
  """f(ema_params, g_stats, d_params=None, d_stats=None) -> (uint8 (num_samples, H, W, 3), the
  fraction of proposals taken or None): the evaluation samples.

  The latents are fixed by the seed, so every checkpoint is judged on the same
  z; they are generated in batches of train.batch_size (BatchNorm layers see
  batches of the size they were trained with). A conditional generator draws
  sample i from `labels[i]` (int (num_samples, heads)). config.eval.truncation > 0
  draws the latents truncated (sampling.fixed_latents); config.eval.truncation_psi != 1
  pulls StyleGAN2's w towards its tracked average or, with eval.truncation_center='label',
  towards each sample's label's average w over truncation_center_latents fixed latents
  (sampling.label_w_averager: one program, recomputed for each checkpoint's weights).

  config.eval.mh_steps = K > 0 corrects every sample with `discriminator` (whose d_params
  and d_stats the sampler then needs): sample i becomes the last state of an independence
  Metropolis-Hastings chain that starts at the plain sample and sees K more proposals (z
  drawn as above from keys fixed by the seed, batch and step; the sample's own labels),
  each taken with probability min(1, exp(logit' - logit)) of D's logits (gan_jax/
  rejection.py; MH-GAN); the sampler then also gives the fraction of proposals taken.
  """
  psi = config.eval.get("truncation_psi", 1.0)
  mh_steps = config.eval.get("mh_steps", 0)
  check_mh_options(config.eval)
  if mh_steps and discriminator is None:
    raise ValueError("eval.mh_steps needs the discriminator")
  center_latents = label_center_latents(config)
  if center_latents is not None and labels is None:
    raise ValueError("truncation_center 'label' needs a conditional run's labels")
  label_centers = (None if center_latents is None
                   else sampling.label_w_averager(generator, center_latents))
  num = config.eval.num_samples
  batch = min(config.train.batch_size, num)
  batches = -(-num // batch)
  truncation = config.eval.get("truncation", 0.0)
  z = sampling.fixed_latents(config.seed, batches * batch, config.model.latent_dim,
                             config.model.latent_dist, stream=_EVAL_STREAM,
                             truncation=truncation)
  z = z.reshape(batches, batch, -1)
  if labels is not None:
    labels = np.asarray(labels, np.int32)
    padded = np.concatenate([labels, labels[:batches * batch - num]]) if num < batches * batch \
        else labels
    labels = padded.reshape(batches, batch, -1)

  def images(params, stats, z, labels, centers):
    return sampling.generate(generator, params, stats, z, labels=labels, truncation_psi=psi,
                             truncation_center=centers)

  one_batch = jax.jit(lambda *args: sampling.to_uint8(images(*args)))

  def draw_latents(key):
    shape = (batch, config.model.latent_dim)
    if truncation:
      return latents.truncated_gaussian(key, shape, truncation, config.model.latent_dist)
    return latents.get_latent_sampler(config.model.latent_dist)(key, shape)

  @jax.jit
  def chain_start(params, stats, d_params, d_stats, z, labels, centers):
    x = images(params, stats, z, labels, centers)
    return x, sampling.discriminator_logits(discriminator, d_params, d_stats, x, labels)

  @jax.jit
  def chain_step(params, stats, d_params, d_stats, x, logits, key, labels, centers):
    k_z, k_accept = jax.random.split(key)
    proposal = images(params, stats, draw_latents(k_z), labels, centers)
    proposal_logits = sampling.discriminator_logits(discriminator, d_params, d_stats, proposal,
                                                    labels)
    x, logits, accept = rejection.mh_move(k_accept, x, logits, proposal, proposal_logits)
    return x, logits, jnp.sum(accept)

  mh_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), _MH_STREAM)

  def corrected(params, stats, d_params, d_stats, i, labels, centers):
    x, logits = chain_start(params, stats, d_params, d_stats, z[i], labels, centers)
    accepted = 0
    for t in range(mh_steps):
      x, logits, taken = chain_step(params, stats, d_params, d_stats, x, logits,
                                    jax.random.fold_in(jax.random.fold_in(mh_key, i), t),
                                    labels, centers)
      accepted += int(taken)
    return np.asarray(sampling.to_uint8(x)), accepted

  def sample(params, stats, d_params=None, d_stats=None) -> Tuple[np.ndarray, Optional[float]]:
    if mh_steps and d_params is None:
      raise ValueError("eval.mh_steps needs the discriminator's parameters")
    centers = [None] * batches
    if label_centers is not None:
      centers = label_centers(params, labels.reshape(batches * batch, -1)).reshape(
          batches, batch, -1)
    out, accepted = [], 0
    for i in range(batches):
      batch_labels = None if labels is None else labels[i]
      if mh_steps:
        x, taken = corrected(params, stats, d_params, d_stats, i, batch_labels, centers[i])
        accepted += taken
      else:
        x = np.asarray(one_batch(params, stats, z[i], batch_labels, centers[i]))
      out.append(x)
    acceptance = accepted / (batches * batch * mh_steps) if mh_steps else None
    return np.concatenate(out)[:num], acceptance

  return sample


def label_center_latents(config) -> Optional[jax.Array]:
  """The latents each label's average w is taken over when config.eval truncates w towards
  the labels' own averages (truncation_psi != 1, truncation_center 'label'), fixed by the
  seed; None otherwise."""
  if (config.eval.get("truncation_psi", 1.0) == 1.0
      or config.eval.get("truncation_center", "global") != "label"):
    return None
  count = config.eval.get("truncation_center_latents", 256)
  if count < 1:
    raise ValueError(f"truncation_center_latents must be >= 1, got {count}")
  return sampling.fixed_latents(config.seed, count, config.model.latent_dim,
                                config.model.latent_dist, stream=_CENTER_STREAM)


class RunEvaluator:
  """Evaluates a run's generator at given steps and writes the reports (training and CLI).

  In a multi-process run every process evaluates (the sampling is a program over every
  device) and gets the same report; only the one given `writes` (process 0) writes files.
  With config.eval.mh_tune = N > 0, each evaluation first trains the saved D on alone for N
  updates against the frozen EMA generator (gan_jax/d_tuning.py) on the training images
  outside the reference set (tuning_images, decoded once at the start), and the
  Metropolis-Hastings correction reads that D; the run's own state is not changed.
  """

  def __init__(self, config, generator, workdir: str, writes: bool = True, discriminator=None):
    self.config, self.writes = config, writes
    self.generator, self.discriminator = generator, discriminator
    names = evaluator_lib.parse_metrics(config.eval.metrics)
    evaluator_lib.check_label_sets(names, config.data.get("labels", ""))
    # Held-out images when a metric needs them, or for the labelled metrics' real ceiling.
    need_heldout = any(evaluator_lib.METRICS.get(n).needs_heldout
                       or evaluator_lib.METRICS.get(n).needs_labels for n in names)
    sets = load_reference_sets(config, need_heldout)
    self.evaluator = evaluator_lib.Evaluator(config.eval, sets.train, sets.heldout,
                                             sets.description, sets.train_labels,
                                             sets.heldout_labels)
    self.labels = eval_labels(config, sets.label_table)
    self.directory = os.path.join(workdir, "eval")
    self._decoded = {}  # tuning_images(config), decoded once; shared with with_correction's
    self._prepare_sampling()

  def _prepare_sampling(self) -> None:
    """The sampler and, with config.eval.mh_tune, the D tuning and its images."""
    config = self.config
    self.sample = make_sampler(config, self.generator, self.labels, self.discriminator)
    self.tune_updates = config.eval.get("mh_tune", 0)
    self.tuning_description = ""  # which images D is tuned on ('' without tuning)
    if self.tune_updates:
      from gan_jax import d_tuning  # pylint: disable=g-import-not-at-top
      self.tune = d_tuning.make_tuner(config, self.generator, self.discriminator,
                                      config.eval.get("mh_tune_loss", ""))
      if "tuning" not in self._decoded:
        self._decoded["tuning"] = tuning_images(config)
      (self.tuning_images, self.tuning_labels, self.tuning_rows,
       self.tuning_description) = self._decoded["tuning"]

  def with_correction(self, mh_steps: int, mh_tune: int) -> "RunEvaluator":
    """This evaluator with config.eval.mh_steps and mh_tune replaced (the D correction and
    its tuning): the same reference images, their features (computed once for all such
    evaluators) and tuning images; its own sampler and tuner (this evaluator itself where
    both options are unchanged). ValueError for options that check_mh_options refuses."""
    if (mh_steps, mh_tune) == (self.config.eval.get("mh_steps", 0), self.tune_updates):
      return self
    config = self.config.copy_and_resolve_references()
    config.eval.mh_steps, config.eval.mh_tune = mh_steps, mh_tune
    check_mh_options(config.eval, self.discriminator)
    variant = copy.copy(self)
    variant.config = config
    variant._prepare_sampling()  # pylint: disable=protected-access
    return variant

  def __call__(self, step: int, state) -> Tuple[Dict[str, Any], Dict[str, float]]:
    """(report, scalars) for the generator of the TrainState `state`, saved at `step`
    (its D too where config.eval.mh_steps corrects the samples); writes eval/step_N.json
    and grids."""
    start = time.perf_counter()
    if self.tune_updates:
      state = self.tune(state, self.tuning_images, self.tuning_labels, self.tune_updates,
                        self.tuning_rows)
    fake, acceptance = self.sample(state.ema_params, state.g_stats, state.d_params,
                                   state.d_stats)
    report = self.evaluator(fake, self.labels, step=step,
                            generator="EMA generator, fixed eval latents "
                            f"(seed {self.config.seed}{samples_description(self.config)})")
    if not self.writes:
      return report, evaluator_lib.flatten(report)
    os.makedirs(self.directory, exist_ok=True)
    # Truncated samples are another protocol: their own files, the plain report kept.
    stem = os.path.join(self.directory, f"step_{step}{samples_suffix(self.config)}")
    writers.save_png(stem + "_samples.png", writers.make_grid(fake[:64]))
    if "nearest_train_pixels" in self.evaluator.last_fake.features:
      _, index, flipped = self.evaluator.last_fake.features["nearest_train_pixels"]
      writers.save_png(stem + "_nearest.png", collapse.nearest_pairs_picture(
          fake, self.evaluator.train.images, index, flipped))
    seconds = time.perf_counter() - start
    record = {"step": step, "seconds": round(seconds, 2)}
    if acceptance is not None:
      record["mh_acceptance"] = round(acceptance, 4)
    with open(stem + ".json.tmp", "w") as f:
      json.dump({**record, "metrics": report}, f, indent=1)
    os.replace(stem + ".json.tmp", stem + ".json")
    return report, evaluator_lib.flatten(report)


def samples_description(config) -> str:
  """How config.eval truncates (or corrects) the samples, for a report's protocol ('' when it
  does neither)."""
  truncation, psi = config.eval.get("truncation", 0.0), config.eval.get("truncation_psi", 1.0)
  towards = ""
  if label_center_latents(config) is not None:
    towards = (" towards each label's average w (over "
               f"{config.eval.truncation_center_latents} latents)")
  mh_steps, mh_tune = config.eval.get("mh_steps", 0), config.eval.get("mh_tune", 0)
  tune_loss = config.eval.get("mh_tune_loss", "")
  with_loss = f" with the {tune_loss} loss" if tune_loss else ""
  tuned = (f" (D first trained {mh_tune} updates{with_loss} against the frozen EMA generator "
           "on the training images outside the reference set)" if mh_tune else "")
  return ((f", truncated to [-{truncation:g}, {truncation:g}]" if truncation else "")
          + (f", w truncated with psi {psi:g}{towards}" if psi != 1.0 else "")
          + (f", corrected by Metropolis-Hastings with D{tuned} over {mh_steps} proposals per "
             "sample" if mh_steps else ""))


def samples_suffix(config) -> str:
  """The file-name suffix of reports with truncated (or corrected) samples ('' when
  config.eval does neither): another protocol, so its own files."""
  truncation, psi = config.eval.get("truncation", 0.0), config.eval.get("truncation_psi", 1.0)
  label = "_label" if label_center_latents(config) is not None else ""
  mh_steps, mh_tune = config.eval.get("mh_steps", 0), config.eval.get("mh_tune", 0)
  tune_loss = config.eval.get("mh_tune_loss", "")
  return ((f"_truncation{truncation:g}" if truncation else "")
          + (f"_psi{psi:g}{label}" if psi != 1.0 else "")
          + (f"_mh{mh_steps}" if mh_steps else "") + (f"_tune{mh_tune}" if mh_tune else "")
          + (f"_{tune_loss}" if mh_tune and tune_loss else ""))


def check_truncation_center(config, generator) -> None:
  """ValueError unless config.eval.truncation_center is a known centre that `generator` has
  (sampling.check_truncation_center; checked in full only where psi truncates) and
  truncation_center_latents is >= 1."""
  center = config.eval.get("truncation_center", "global")
  if center not in sampling.TRUNCATION_CENTERS or config.eval.get("truncation_psi", 1.0) != 1.0:
    sampling.check_truncation_center(generator, center)
  label_center_latents(config)


def check_mh_options(eval_config, discriminator=None) -> None:
  """ValueError ('<option> ...') unless eval.mh_steps >= 0, eval.mh_tune is >= 0 and set only
  with mh_steps (the tuning serves the correction alone), and eval.mh_tune_loss is '' or a
  RATIO_LOSSES loss, set only with mh_tune and not for an auto-encoder `discriminator`
  (models/began.py: its scores are reconstruction errors, not logits)."""
  mh_steps, mh_tune = eval_config.get("mh_steps", 0), eval_config.get("mh_tune", 0)
  tune_loss = eval_config.get("mh_tune_loss", "")
  if mh_steps < 0:
    raise ValueError(f"mh_steps must be >= 0, got {mh_steps}")
  if mh_tune < 0:
    raise ValueError(f"mh_tune must be >= 0, got {mh_tune}")
  if mh_tune and not mh_steps:
    raise ValueError(f"mh_tune={mh_tune} tunes D for the Metropolis-Hastings correction, "
                     "which is off: set mh_steps > 0 too")
  if tune_loss:
    if tune_loss not in RATIO_LOSSES:
      raise ValueError(f"mh_tune_loss: {tune_loss!r} is not a loss whose optimal D's logit is "
                       f"log p_data / p_G; choose from: {', '.join(RATIO_LOSSES)} (or '': the "
                       "run's)")
    if not mh_tune:
      raise ValueError(f"mh_tune_loss={tune_loss!r} is the loss of a D tuning, which is off: "
                       "set mh_tune > 0 too")
    if getattr(discriminator, "scores_reconstruction", False):
      raise ValueError(f"mh_tune_loss={tune_loss!r}: this D is an auto-encoder scored by its "
                       "reconstruction error, which no logit loss can tune; leave it ''")


def config_with_eval(saved: Dict[str, Any]) -> ml_collections.ConfigDict:
  """The saved run config as a ConfigDict, with default eval options where it has none."""
  config = ml_collections.ConfigDict(saved)
  if "split" not in config.data:
    config.data.split = ""
  from configs import common  # pylint: disable=g-import-not-at-top
  defaults = common.evaluation()
  if "eval" not in config:
    config.eval = defaults
  for key, value in defaults.items():  # options added since the run was saved
    if key not in config.eval:
      config.eval[key] = value
  return config


def abstract_state(config) -> Tuple[Any, Any]:
  """(generator, abstract TrainState) of a saved run's `config`, laid out replicated on this
  process's devices (whatever the training run had), for Checkpointer.restore."""
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  generator, discriminator = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  replicated = parallel.replicated(parallel.make_mesh())
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
      jax.eval_shape(train.make_init(config, generator, discriminator, g_tx, d_tx)))
  return generator, abstract


def restore_state(workdir: str, step: str = "latest"):
  """(config, generator, TrainState, step) of a run's checkpoint (`step`: latest, N or best),
  restored onto this process's devices; UserError where there is none."""
  workdir = os.path.abspath(workdir)
  directory = os.path.join(workdir, checkpoint_lib.BEST_DIR if step == "best" else "checkpoints")
  if not os.path.isdir(directory):
    raise UserError(f"no checkpoints in {directory}: train with launch.py first")
  checkpointer = checkpoint_lib.Checkpointer(directory, keep=0, async_save=False)
  try:
    steps = choose_steps(checkpointer, "latest" if step == "best" else step)
    config = config_with_eval(checkpointer.restore_config(steps[-1]))
    generator, abstract = abstract_state(config)
    state, _, _ = checkpointer.restore(abstract, steps[-1])
  finally:
    checkpointer.close()
  return config, generator, state, steps[-1]


def restore_generator(workdir: str, step: str = "latest"):
  """(config, generator, ema_params, g_stats, step) of a run's checkpoint (restore_state)."""
  config, generator, state, restored = restore_state(workdir, step)
  return config, generator, state.ema_params, state.g_stats, restored


def choose_steps(checkpointer: checkpoint_lib.Checkpointer, step: str) -> List[int]:
  """The checkpoint steps that `--step` (N, 'latest', 'all') names."""
  steps = checkpointer.all_steps()
  if not steps:
    raise UserError(f"no checkpoint in {checkpointer.directory}")
  if step == "latest":
    return steps[-1:]
  if step == "all":
    return steps
  try:
    wanted = int(step)
  except ValueError:
    raise UserError(f"--step={step!r}: give a step number, 'latest', 'all' or 'best'") from None
  if wanted not in steps:
    raise UserError(f"no checkpoint of step {wanted} in {checkpointer.directory}; saved steps: "
                    f"{', '.join(map(str, steps))}")
  return [wanted]


def evaluate_run(workdir: str, step: str = "latest", overrides: Optional[Dict[str, Any]] = None
                 ) -> List[Dict[str, Any]]:
  """Evaluates the checkpoints of `workdir` that `step` names; returns one report per step.

  `overrides` replace fields of the run's config.eval (e.g. metrics, num_samples).
  """
  workdir = os.path.abspath(workdir)
  if step == "best":
    directory = os.path.join(workdir, checkpoint_lib.BEST_DIR)
    step = "latest"
  else:
    directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise UserError(f"no checkpoints in {directory}: train with launch.py first"
                    + (" and config.eval.best set" if directory.endswith(
                        checkpoint_lib.BEST_DIR) else ""))
  checkpointer = checkpoint_lib.Checkpointer(directory, keep=0, async_save=False)
  try:
    steps = choose_steps(checkpointer, step)
    config = config_with_eval(checkpointer.restore_config(steps[-1]))
    for key, value in (overrides or {}).items():
      check_choice("eval option", key, config.eval, UserError)
      config.eval[key] = type(config.eval[key])(value)
    try:
      latents.check_truncation(config.eval.truncation, config.model.latent_dist)
    except ValueError as e:
      raise UserError(f"--truncation: {e}") from None
    generator, abstract = abstract_state(config)
    try:
      sampling.check_truncation_psi(generator, config.eval.truncation_psi)
    except ValueError as e:
      raise UserError(f"--truncation_psi: {e}") from None
    try:
      check_truncation_center(config, generator)
    except ValueError as e:
      raise UserError(f"--truncation_center: {e}") from None
    discriminator = None
    if config.eval.mh_steps:
      from gan_jax import train  # pylint: disable=g-import-not-at-top
      discriminator = train.make_models(config)[1]
    try:
      check_mh_options(config.eval, discriminator)
    except ValueError as e:
      raise UserError(f"--{e}") from None
    run_evaluator = RunEvaluator(config, generator, workdir, discriminator=discriminator)
    reports = []
    for s in steps:
      state, _, _ = checkpointer.restore(abstract, s)
      report, scalars = run_evaluator(s, state)
      print(f"step {s}: {writers.format_scalars(scalars)}", flush=True)
      reports.append({"step": s, "metrics": report})
    return reports
  finally:
    checkpointer.close()


def main(argv):
  """The command line (absl flags)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  del argv
  f = flags.FLAGS
  overrides = {k: getattr(f, k) for k in ("metrics", "num_samples", "inception_path",
                                          "classifier_path", "num_real", "truncation",
                                          "truncation_psi", "truncation_center", "mh_steps",
                                          "mh_tune", "mh_tune_loss")
               if getattr(f, k) is not None}
  writers.quiet_library_logs()
  run_command(lambda: evaluate_run(f.workdir, f.step, overrides))


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "The run's --workdir.", required=True)
  flags.DEFINE_string("step", "latest", "Checkpoint step: N, latest, all or best.")
  flags.DEFINE_string("metrics", None, "Override config.eval.metrics (comma-separated).")
  flags.DEFINE_integer("num_samples", None, "Override config.eval.num_samples.")
  flags.DEFINE_integer("num_real", None, "Override config.eval.num_real.")
  flags.DEFINE_string("inception_path", None, "The Inception weight file (FID/KID/IS/PR).")
  flags.DEFINE_string("classifier_path", None, "Another anime tag classifier file.")
  flags.DEFINE_float("truncation", None, "Override config.eval.truncation: Gaussian z truncated "
                     "to [-t, t] (BigGAN's truncation trick; reports go to step_N_truncationT.json).")
  flags.DEFINE_float("truncation_psi", None, "Override config.eval.truncation_psi: StyleGAN2's "
                     "w <- c + psi (w - c) (1: off; reports go to step_N_psiP.json).")
  flags.DEFINE_string("truncation_center", None, "Override config.eval.truncation_center: c, "
                      "'global' (the tracked average w) or 'label' (each sample's label's "
                      "average w; conditional runs; reports go to step_N_psiP_label.json).")
  flags.DEFINE_integer("mh_steps", None, "Override config.eval.mh_steps: each sample corrected "
                       "by a Metropolis-Hastings chain over this many more proposals, accepted "
                       "by D's logits (MH-GAN; a density ratio for a minimax/non-saturating D; "
                       "reports go to step_N_mhK.json).")
  flags.DEFINE_integer("mh_tune", None, "Override config.eval.mh_tune: before the correction, "
                       "D is trained on alone for this many updates against the frozen EMA "
                       "generator, on the training images outside the reference set (needs "
                       "--mh_steps; reports go to step_N_mhK_tuneN.json).")
  flags.DEFINE_string("mh_tune_loss", None, "Override config.eval.mh_tune_loss: the loss D is "
                      "tuned with (default: the run's); non_saturating makes a hinge or "
                      "Wasserstein D's logit a log density ratio (reports go to "
                      "step_N_mhK_tuneN_LOSS.json).")


if __name__ == "__main__":
  _define_flags()
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(main)
