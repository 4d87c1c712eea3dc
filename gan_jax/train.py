"""train_and_evaluate(config, workdir): the whole training run.

Data flows one way: config -> data + models + optimizers -> jitted step ->
checkpoints / metrics / samples. Re-running with the same workdir resumes from
the newest complete checkpoint and continues exactly as if never stopped.
"""

import copy
import functools
import json
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import augment as augment_lib
from gan_jax import checkpoint as checkpoint_lib
from gan_jax import data as data_lib
from gan_jax import constraints, diagnostics, latents, losses, models, optim, parallel
from gan_jax import branching, evaluate, precision, sampling, writers
from gan_jax import penalties as penalties_lib
from gan_jax.errors import ConfigError, NonFiniteError, UserError
from gan_jax.fed_step import FedStep
from gan_jax.metrics import evaluator as evaluator_lib
from gan_jax.models import conditional as model_conditional
from gan_jax.registry import check_choice
from gan_jax.state import TrainState, count_params, create_state
from gan_jax.step import (ADA_P, BEGAN_K, D_LOOPS, D_PASSES, LAZY_BRANCHINGS, PENALTY_GRADS, Ada,
                          Equilibrium, GANStep, Growth, PathLength, Penalty, batch_to_float,
                          ema_decay_at, split_batch)


def validate_config(config) -> None:
  """Raises ConfigError, naming the field and the valid choices, before anything is built."""
  choices = [("model.name", config.model.name, models.MODELS),
             ("model.latent_dist", config.model.latent_dist, latents.LATENTS),
             ("loss.name", config.loss.name, losses.LOSSES),
             ("optim.name", config.optim.name, optim.OPTIMIZERS),
             ("optim.schedule", config.optim.get("schedule", "constant"), optim.SCHEDULES)]
  for field, name, registry in choices:
    try:
      registry.get(name)
    except ValueError as e:
      raise ConfigError(f"config.{field}: {e}") from None
  try:
    optim.make_schedule(config.optim, config.train.num_steps)
    for network in ("g", "d"):
      optim.beta2(config.optim, network, config.train.num_steps)
  except ValueError as e:
    raise ConfigError(f"config.optim: {e}") from None
  for network in ("g", "d"):
    name = config.constraint[network]
    if name and name not in constraints.CONSTRAINTS:
      raise ConfigError(f"config.constraint.{network}: unknown constraint {name!r}; choose "
                        f"from: '' (none), {', '.join(constraints.CONSTRAINTS.names())}")
  try:
    for name in penalties_lib.parse_names(config.penalty.use):
      options = config.penalty.get(name, {})
      if options.get("every", 1) < 1:
        raise ValueError(f"penalty.{name}.every must be >= 1")
      if name in penalties_lib.CONSISTENCY_PENALTIES:
        policy = options.get("policy", penalties_lib.CONSISTENCY_POLICY)
        if not augment_lib.parse_policy(policy):
          raise ValueError(f"penalty.{name}.policy names no augmentation: choose from "
                           f"{', '.join(augment_lib.AUGMENTATIONS.names())}")
        if data_lib.toy_mixture(config.data) is not None:
          raise ValueError(f"penalty {name!r} augments images; toy data has none")
    caution = consistency_caution(config)  # builds the penalties: annealed weights checked
  except ValueError as e:
    raise ConfigError(f"config.penalty: {e}") from None
  if caution:
    logging.warning("%s", caution)
  positive = ["model.latent_dim", "train.batch_size", "train.d_steps", "log.every",
              "sample.every", "sample.num", "checkpoint.every"]
  for field in positive:
    section, key = field.split(".")
    if config[section][key] <= 0:
      raise ConfigError(f"config.{field} must be positive, got {config[section][key]}")
  if config.train.num_steps < 0:
    raise ConfigError(f"config.train.num_steps must be >= 0, got {config.train.num_steps}")
  per_call = config.train.get("iterations_per_call", 1)
  if per_call < 1:
    raise ConfigError(f"config.train.iterations_per_call must be >= 1, got {per_call}")
  if per_call > 1 and config.data.get("feed", "auto") in ("host", "stream"):
    raise ConfigError(f"config.train.iterations_per_call={per_call} needs batches selected on "
                      f"the devices: set config.data.feed=device (or auto), not "
                      f"{config.data.feed!r}, or iterations_per_call=1")
  _check_microbatches_divide(config, config.train.batch_size,
                             f"train.batch_size={config.train.batch_size}")
  if config.train.get("max_minutes", 0) < 0:
    raise ConfigError(f"config.train.max_minutes must be >= 0 (0: no limit), got "
                      f"{config.train.max_minutes}")
  try:
    precision.compute_dtype(config.model.get("dtype", "float32"))
  except ValueError as e:
    raise ConfigError(f"config.model.dtype: {e}") from None
  if not 0.0 <= config.ema.decay < 1.0:
    raise ConfigError(f"config.ema.decay must be in [0, 1), got {config.ema.decay}")
  try:
    make_ema_decay(config)
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  try:
    data_lib.validate(config.data)
  except ValueError as e:
    raise ConfigError(f"config.data: {e}") from None
  augment = config.get("augment")  # toy configs may have no augment section
  if augment is not None:
    try:
      policy = augment_lib.parse_policy(augment.policy)
    except ValueError as e:
      raise ConfigError(f"config.augment.policy: {e}") from None
    if not 0.0 <= augment.p <= 1.0:
      raise ConfigError(f"config.augment.p must be in [0, 1], got {augment.p}")
    penalty_grad = augment.get("penalty_grad", "augmented")
    check_choice("config.augment.penalty_grad", penalty_grad, PENALTY_GRADS, ConfigError)
    try:
      make_ada(augment)
    except ValueError as e:
      raise ConfigError(f"config.augment: {e}") from None
    try:
      make_augment_p(config)
    except ValueError as e:
      raise ConfigError(f"config.{e}") from None
    if policy and data_lib.toy_mixture(config.data) is not None:
      raise ConfigError("config.augment.policy: image augmentations do not apply to toy data; "
                        "set config.augment.policy=''")
  try:
    make_models(config)
  except ValueError as e:
    raise ConfigError(f"config.model (for data {config.data.source!r}): {e}") from None
  validate_conditional_config(config)
  validate_eval_config(config)
  try:  # the generator's training options (style mixing, G penalties) fit the model
    make_step(config, *make_models(config), None, None)
  except ValueError as e:
    raise ConfigError(f"config: {e}") from None


def ac_weight_of(config) -> float:
  """The AC-GAN cross-entropy weight the step uses: config.loss.ac_weight for a conditional
  run whose D has an AC-GAN head (model.d_cond), else 0."""
  if not data_lib.label_classes(config.data):
    return 0.0
  _, acgan = model_conditional.parse_d_cond(config.model.get("d_cond", "projection"))
  return float(config.loss.get("ac_weight", 0.0)) if acgan else 0.0


def validate_conditional_config(config) -> None:
  """Raises ConfigError when the conditioning settings contradict each other (an AC-GAN
  head without a weight, a weight without a head, a conditional G without labels)."""
  if not data_lib.label_classes(config.data):
    g_cond = config.model.get("g_cond", "concat")
    if g_cond != "concat":
      raise ConfigError(f"config.model.g_cond={g_cond!r} conditions G on class labels, but "
                        "config.data.labels is empty: set data.labels (e.g. anime_hair_eyes) "
                        "or g_cond='concat'")
    return
  d_cond = config.model.get("d_cond", "projection")
  weight = config.loss.get("ac_weight", 0.0)
  if weight < 0:
    raise ConfigError(f"config.loss.ac_weight must be >= 0, got {weight}")
  if "acgan" in d_cond and not weight:
    raise ConfigError(f"config.model.d_cond={d_cond!r} has an AC-GAN head but "
                      "config.loss.ac_weight is 0: set a weight (e.g. 1.0) or use 'projection'")
  if "acgan" not in d_cond and weight:
    raise ConfigError(f"config.loss.ac_weight={weight} needs an AC-GAN head: set "
                      "config.model.d_cond to 'acgan' or 'projection+acgan'")


def validate_eval_config(config) -> None:
  """Raises ConfigError for an unusable config.eval (unknown metric, bad best, toy data)."""
  options = config.eval
  if options.every < 0:
    raise ConfigError(f"config.eval.every must be >= 0, got {options.every}")
  try:
    names = evaluator_lib.parse_metrics(options.metrics)
  except ValueError as e:
    raise ConfigError(f"config.eval.metrics: {e}") from None
  if options.best and options.best not in names:
    raise ConfigError(f"config.eval.best={options.best!r} is not among config.eval.metrics "
                      f"({options.metrics!r})")
  if options.every and data_lib.toy_mixture(config.data) is not None:
    raise ConfigError("config.eval.every: image metrics do not apply to toy data (its samples "
                      "already report toy/modes_covered); set config.eval.every=0")
  need_labels = [n for n in names if evaluator_lib.METRICS.get(n).needs_labels]
  if need_labels and not data_lib.label_classes(config.data):
    raise ConfigError(f"config.eval.metrics: {', '.join(need_labels)} measure a conditional "
                      "generator: set config.data.labels (e.g. anime_hair_eyes) or drop them")
  evaluator_lib.check_label_sets(names, config.data.get("labels", ""))
  need_heldout = [n for n in names if evaluator_lib.METRICS.get(n).needs_heldout]
  if options.every and need_heldout and evaluate.heldout_source(config) is None:
    raise ConfigError(
        f"config.eval.metrics: {', '.join(need_heldout)} compare with held-out real images, but "
        f"data.source {config.data.source!r} has no test split: set config.eval.heldout_source "
        "(e.g. tfds:anime_faces:test or folder:/held/out) or drop them")
  if options.every and options.num_samples < 2:
    raise ConfigError(f"config.eval.num_samples must be >= 2, got {options.num_samples}")
  try:
    latents.check_truncation(options.get("truncation", 0.0), config.model.latent_dist)
  except ValueError as e:
    raise ConfigError(f"config.eval.truncation: {e}") from None
  psi = options.get("truncation_psi", 1.0)
  try:
    if psi != 1.0:  # (builds the models only then)
      sampling.check_truncation_psi(make_models(config)[0], psi)
  except ValueError as e:
    raise ConfigError(f"config.eval.truncation_psi: {e}") from None
  center = options.get("truncation_center", "global")
  try:
    if psi != 1.0 or center not in sampling.TRUNCATION_CENTERS:
      evaluate.check_truncation_center(config, make_models(config)[0])
  except ValueError as e:
    raise ConfigError(f"config.eval.truncation_center: {e}") from None
  try:
    evaluate.check_mh_options(options, make_models(config)[1] if options.get("mh_tune_loss")
                              else None)
  except ValueError as e:
    raise ConfigError(f"config.eval.{e}") from None


def consistency_caution(config) -> Optional[str]:
  """A warning for consistency regularisation on DCGAN's BatchNorm discriminator, which it
  was measured to stop (benchmarks/README.md: at weight 10, D's scores on reals and fakes
  stay together and G collapses on 3 of 3 seeds; CR-GAN's D's are spectrally normalised,
  without BatchNorm); None for every other config."""
  used = [p for p in make_penalties(config)
          if p.name in penalties_lib.CONSISTENCY_PENALTIES]
  if not used or config.model.name != "dcgan" or config.model.get("d_norm", "batch") != "batch":
    return None
  weights = ", ".join(f"{p.name} {p.weight:g}" for p in used)
  return (f"penalty.use={','.join(p.name for p in used)} (weight {weights}) on DCGAN's "
          "BatchNorm discriminator (model.d_norm='batch'): measured on the anime faces, weight "
          "10 keeps D's scores on reals and fakes together and G collapses (benchmarks/README.md, "
          "bCR); use model.d_norm=none with spectral norm (configs/sngan.py), as CR-GAN does")


def config_to_dict(config) -> Dict[str, Any]:
  """The config as plain JSON-compatible data (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def with_recorded_classes(config):
  """`config`, or for a run conditioned on its data's own classes (data.labels='class') with
  none recorded yet, a copy whose data.classes names them: the run reads them from the data
  once (every later question about its labels is answered from the record) and saves them
  with its checkpoints, so those sample and evaluate without the data."""
  name = config.data.get("labels", "")
  if (not name or name not in data_lib.LABEL_SETS.names() or config.data.get("classes")
      or not data_lib.LABEL_SETS.get(name).from_classes):
    return config  # an unknown name is validate_config's to report
  classes = list(data_lib.label_set_of(config.data).heads[0][1])
  config = copy.deepcopy(config)
  with config.unlocked():
    config.data.classes = classes
  return config


def config_differences(saved: Dict[str, Any], current: Dict[str, Any],
                       prefix: str = "") -> List[str]:
  """'field: saved -> current' for every leaf that differs between two config dicts."""
  out = []
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_differences(a, b, f"{prefix}{key}.")
    elif a != b:
      out.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return out


def make_penalties(config) -> Tuple[Penalty, ...]:
  """The penalties `config.penalty.use` lists, with their options bound (and their weights
  annealed to `weight_final` along optim.schedule's decay where that is >= 0)."""
  out = []
  for name in penalties_lib.parse_names(config.penalty.use):
    options = dict(config.penalty.get(name, {}))
    weight, every = options.pop("weight", 1.0), options.pop("every", 1)
    weight_at = optim.annealed(weight, options.pop("weight_final", -1.0), config.optim,
                               config.train.num_steps, f"penalty.{name}.weight_final")
    out.append(Penalty(name, functools.partial(penalties_lib.PENALTIES.get(name), **options),
                       weight, every, weight_at if callable(weight_at) else None))
  return tuple(out)


def make_ema_decay(config):
  """The generator EMA's decay per iteration: config.ema.decay, or where
  ema.half_life_images > 0 the decay of that half-life, 0.5 ** (batch / half-life)
  (StyleGAN2-ADA's ema_kimg), or where ema.half_life_final >= 0 a function of the iteration:
  the half-life annealed from half_life_images to it along optim.schedule's decay (R3GAN's
  0 -> 500k images; a half-life of 0 averages nothing). ValueError for bad options."""
  base, final = config.ema.get("half_life_images", 0), config.ema.get("half_life_final", -1)
  if base < 0:
    raise ValueError(f"ema.half_life_images must be >= 0 (0: ema.decay), got {base}")
  if not base and final < 0:
    return config.ema.decay
  half_life = optim.annealed(float(base), float(final), config.optim, config.train.num_steps,
                             "ema.half_life_final")
  batch = config.train.batch_size

  def decay(h):
    return jnp.where(h > 0, 0.5 ** (batch / jnp.maximum(h, 1e-8)), 0.0)
  if callable(half_life):
    return lambda t: decay(half_life(t))
  return float(decay(half_life))


def scheduled_values(config, iteration: int) -> Dict[str, float]:
  """The hyperparameters that move during the run as iteration `iteration` uses them (for the
  metrics rows): g_lr and d_lr under a learning-rate schedule, g_beta2 and d_beta2 under
  optim.beta2_final, <penalty>_weight for each annealed penalty, ema_decay under
  ema.half_life_final, augment_p under augment.p_final; {} where nothing moves."""
  values = optim.scheduled_rates(config.optim, iteration, config.train.num_steps)
  t = jnp.int32(iteration)
  for network in ("g", "d"):
    beta2 = optim.beta2(config.optim, network, config.train.num_steps)  # count = iteration
    if callable(beta2):
      values[f"{network}_beta2"] = float(beta2(t))
  for penalty in make_penalties(config):
    if penalty.annealed is not None:
      values[f"{penalty.name}_weight"] = float(penalty.annealed(t))
  ema_decay = make_ema_decay(config)
  if callable(ema_decay):
    values["ema_decay"] = float(ema_decay_at(t, ema_decay, config.ema.rampup))
  augment_p = make_augment_p(config)
  if augment_p is not None:
    values["augment_p"] = float(augment_p(t))
  return values


def make_optimizers(config):
  """(g_tx, d_tx): each network's optimizer chain with its constraint (and learning-rate
  schedule over the run's train.num_steps iterations)."""
  return tuple(optim.make_optimizer(config.optim, network, config.constraint,
                                    config.train.num_steps, config.train.d_steps)
               for network in ("g", "d"))


def make_models(config):
  """(generator, discriminator) of `config.model` for `config.data`'s examples (conditional on
  `config.data.labels` when set)."""
  return models.build_models(config.model, data_lib.example_spec(config.data)[0],
                             data_lib.label_classes(config.data))


def controller_states(config) -> Dict[str, float]:
  """The initial values of the controllers the step keeps in d_stats beside D's statistics:
  ADA's p (config.augment.ada_target; from augment.p) and BEGAN's k (loss began; from
  loss.began.k0). Empty for runs with neither."""
  out = {}
  if make_ada(config.get("augment")) is not None:
    out[ADA_P] = config.augment.p
  if make_equilibrium(config.loss) is not None:
    out[BEGAN_K] = config.loss.began.get("k0", 0.0)
  return out


def make_init(config, generator, discriminator, g_tx, d_tx):
  """A zero-argument function creating this config's fresh TrainState (jit it, eval_shape it);
  d_stats also holds the step's controllers (controller_states)."""
  create = functools.partial(
      create_state, jax.random.PRNGKey(config.seed), generator, discriminator,
      g_tx, d_tx, config.model.latent_dim, data_lib.example_spec(config.data)[0],
      len(data_lib.label_classes(config.data)))
  return lambda: with_controllers(config, create())


def with_controllers(config, state: TrainState) -> TrainState:
  """A fresh `state` with the step's controllers (controller_states) added to its d_stats."""
  controllers = controller_states(config)
  return state.replace(d_stats={**state.d_stats, **{
      name: jnp.asarray(value, jnp.float32) for name, value in controllers.items()}})


def make_path_length(config) -> Optional[PathLength]:
  """The path-length regulariser of config.g_penalty.path_length (None: no such section or
  weight 0); ValueError for unusable options."""
  options = config.get("g_penalty", {}).get("path_length")
  if not options or not options.get("weight", 0.0):
    return None
  unknown = set(options) - set(PathLength._fields)
  if unknown:
    raise ValueError(f"unknown g_penalty.path_length option(s) {', '.join(sorted(unknown))}; "
                     f"choose from: {', '.join(PathLength._fields)}")
  path_length = PathLength(**dict(options))
  if (path_length.weight < 0 or path_length.every < 1 or path_length.batch_shrink < 1
      or not 0.0 < path_length.decay <= 1.0):
    raise ValueError(f"g_penalty.path_length needs weight >= 0, every >= 1, batch_shrink >= 1 and decay "
                     f"in (0, 1], got {dict(options)}")
  return path_length


def make_ada(augment_config) -> Optional[Ada]:
  """ADA's adaptive augmentation probability of config.augment (None: ada_target 0, or no
  such field); ValueError for unusable options."""
  target = augment_config.get("ada_target", 0.0) if augment_config is not None else 0.0
  if not target:
    return None
  ada = Ada(target=target, kimg=augment_config.get("ada_kimg", Ada._field_defaults["kimg"]))
  if not 0.0 < ada.target < 1.0 or ada.kimg <= 0:
    raise ValueError(f"ada_target needs to be in (0, 1) and ada_kimg > 0, got {ada.target} and "
                     f"{ada.kimg}")
  if not augment_lib.parse_policy(augment_config.policy):
    raise ValueError(f"ada_target={ada.target} adapts the probability of augmentations, "
                     "but augment.policy lists none")
  return ada


def make_augment_p(config) -> Optional[Callable[[jax.Array], jax.Array]]:
  """iteration -> the augmentations' probability, annealed from augment.p to augment.p_final
  along optim.schedule's decay (R3GAN's 0 -> 0.3) where p_final >= 0; None otherwise (p
  fixed, or ADA's). ValueError for unusable options."""
  augment = config.get("augment")
  final = augment.get("p_final", -1.0) if augment is not None else -1.0
  if final < 0:
    return None
  if final > 1:
    raise ValueError(f"augment.p_final must be in [0, 1] (or -1: augment.p throughout), got "
                     f"{final}")
  if augment.get("ada_target", 0.0):
    raise ValueError("augment.p_final anneals the augmentations' probability and "
                     "augment.ada_target adapts it: set one of them")
  if not augment_lib.parse_policy(augment.policy):
    raise ValueError(f"augment.p_final={final} anneals the probability of augmentations, but "
                     "augment.policy lists none")
  return optim.annealed(augment.p, final, config.optim, config.train.num_steps,
                        "augment.p_final")


def make_equilibrium(loss_config) -> Optional[Equilibrium]:
  """BEGAN's equilibrium controller of config.loss.began (None unless loss.name is began);
  ValueError for unusable options."""
  if loss_config.name != "began":
    return None
  options = dict(loss_config.get("began", {}))
  k0 = options.pop("k0", 0.0)
  unknown = set(options) - set(Equilibrium._fields)
  if unknown:
    raise ValueError(f"unknown loss.began option(s) {', '.join(sorted(unknown))}; choose "
                     f"from: {', '.join(Equilibrium._fields + ('k0',))}")
  equilibrium = Equilibrium(**options)
  if equilibrium.gamma <= 0 or equilibrium.lambda_k < 0 or not 0.0 <= k0 <= 1.0:
    raise ValueError(f"loss.began needs gamma > 0, lambda_k >= 0 and k0 in [0, 1], got "
                     f"{dict(loss_config.began)}")
  return equilibrium


def make_growth(model_config, generator) -> Optional[Growth]:
  """ProGAN's growth schedule of config.model.growth for a generator that grows
  (models/progan.py; None for the others; without the section, full size from the start);
  ValueError for unusable options, or a growth section on a model that does not grow."""
  options = model_config.get("growth")
  max_level = getattr(generator, "max_level", None)
  if max_level is None:
    if options is not None:
      raise ValueError(f"model.growth: model {model_config.name!r} does not grow (progan does)")
    return None
  options = dict(options or {})
  unknown = set(options) - {"stable_iters", "fade_iters"}
  if unknown:
    raise ValueError(f"unknown model.growth option(s) {', '.join(sorted(unknown))}; choose "
                     "from: stable_iters, fade_iters")
  growth = Growth(max_level=max_level, stable_iters=options.get("stable_iters", 0),
                  fade_iters=options.get("fade_iters", 0))
  if growth.stable_iters < 0 or growth.fade_iters < 0:
    raise ValueError(f"model.growth needs stable_iters >= 0 and fade_iters >= 0, got {options}")
  return growth


def check_loss_fits_discriminator(loss_name: str, model_name: str, discriminator) -> None:
  """ValueError unless the auto-encoder losses (losses.AUTOENCODER_LOSSES) and a D scored by
  its reconstruction error (models/began.py) come together: the other losses read logits
  as 'larger is more real, any sign', these need logits that are minus errors (<= 0)."""
  reconstructs = getattr(discriminator, "scores_reconstruction", False)
  if loss_name in losses.AUTOENCODER_LOSSES and not reconstructs:
    raise ValueError(f"loss.name={loss_name!r} reads D's logits as minus reconstruction "
                     f"errors; model.name={model_name!r} has no auto-encoder D: use "
                     "model.name='began'")
  if reconstructs and loss_name not in losses.AUTOENCODER_LOSSES:
    raise ValueError(f"model.name={model_name!r} scores images by minus their reconstruction "
                     f"error (<= 0), which loss.name={loss_name!r} cannot use; choose from: "
                     f"{', '.join(losses.AUTOENCODER_LOSSES)}")


def check_d_passes(config, mesh) -> None:
  """ConfigError for train.d_passes=fused on more than one device: the two halves stacked
  for the vmap do not merge into a batch sharded like the data, so XLA would gather the
  whole real and fake batch onto every device and run D on all of it there."""
  if config.train.get("d_passes", "separate") == "fused" and mesh.size > 1:
    raise ConfigError(f"train.d_passes='fused' runs on one device only: on these {mesh.size} "
                      "devices XLA gathers the whole real and fake batch onto every device "
                      "for D; use train.d_passes='separate'")


def _check_microbatches_divide(config, rows: int, what: str) -> None:
  """ConfigError unless train.microbatches is a positive divisor of `rows` (named `what`)."""
  m = config.train.get("microbatches", 1)
  if m < 1 or rows % m:
    raise ConfigError(f"config.train.microbatches={m} must be a positive divisor of {what}")


def check_microbatches(config, mesh) -> None:
  """ConfigError unless train.microbatches divides every device's share of the batch (each
  device then splits its own rows into micro-batches; step.py's module docstring)."""
  per_device = config.train.batch_size // mesh.size
  _check_microbatches_divide(
      config, per_device, f"the batch per device (train.batch_size="
      f"{config.train.batch_size} over {mesh.size} device(s): {per_device})")


def make_step(config, generator, discriminator, g_tx, d_tx) -> GANStep:
  """The pure train step for this config."""
  augment = config.get("augment")  # D's input augmentation; toy configs may have no section
  # StyleGAN2's generator options (models/stylegan2.py); other families have none.
  style_mixing = config.model.get("style_mixing", 0.0)
  path_length = make_path_length(config)
  if style_mixing and not hasattr(generator, "num_ws"):
    raise ValueError(f"model.style_mixing: model {config.model.name!r} has no style mixing")
  if path_length and not hasattr(generator, "synthesize"):
    raise ValueError(f"g_penalty.path_length: model {config.model.name!r} has no w to "
                     "regularise (stylegan2 has)")
  d_loop = config.train.get("d_loop", "unroll")
  check_choice("train.d_loop", d_loop, D_LOOPS)
  ada = make_ada(augment)
  augment_p = make_augment_p(config)
  d_passes = config.train.get("d_passes", "separate")
  check_choice("train.d_passes", d_passes, D_PASSES)
  check_loss_fits_discriminator(config.loss.name, config.model.name, discriminator)
  equilibrium = make_equilibrium(config.loss)
  # The loss's own options (config.loss.<name>); BEGAN's configure its controller instead.
  loss_options = {} if equilibrium else dict(config.loss.get(config.loss.name, {}))
  lazy_branching = branching.resolve("train.lazy_branching",
                                     config.train.get("lazy_branching", "auto"), LAZY_BRANCHINGS)
  return GANStep(
      d_loop=d_loop, d_passes=d_passes, microbatches=config.train.get("microbatches", 1),
      lazy_branching=lazy_branching,
      generator=generator, discriminator=discriminator,
      loss_fn=losses.get_loss(config.loss.name, **loss_options),
      equilibrium=equilibrium,
      g_tx=g_tx, d_tx=d_tx,
      sample_latent=latents.get_latent_sampler(config.model.latent_dist),
      latent_dim=config.model.latent_dim,
      ema_decay=make_ema_decay(config), ema_rampup=config.ema.rampup,
      penalties=make_penalties(config),
      augment=(augment_lib.make_augment(augment.policy, 1.0 if ada or augment_p else augment.p)
               if augment is not None else None),
      ada=ada, augment_p=augment_p,
      penalty_grad=augment.get("penalty_grad", "augmented") if augment is not None
                   else "augmented",
      compute_dtype=precision.compute_dtype(config.model.get("dtype", "float32")),
      ac_weight=ac_weight_of(config),
      g_rngs=tuple(getattr(generator, "train_rngs", ())), style_mixing=style_mixing,
      path_length=path_length, growth=make_growth(config.model, generator))


def make_batch_spec(config, mesh):
  """The abstract data batch of one iteration, laid out on `mesh`: uint8 images (or float toy
  points) (d_steps, batch, *example), plus int32 labels (d_steps, batch, heads) as a
  LabeledBatch when config.data.labels is set."""
  example_shape, example_dtype = data_lib.example_spec(config.data)
  lead = (config.train.d_steps, config.train.batch_size)
  sharding = parallel.batch_sharding(mesh, batch_axis=1)
  images = jax.ShapeDtypeStruct((*lead, *example_shape), example_dtype, sharding=sharding)
  heads = len(data_lib.label_classes(config.data))
  if not heads:
    return images
  return data_lib.LabeledBatch(
      images, jax.ShapeDtypeStruct((*lead, heads), np.int32, sharding=sharding))


def first_non_finite(history: List[Tuple[int, Dict[str, Any]]]) -> Optional[Tuple[int, str, float]]:
  """(step, metric, value) of the first NaN/Inf in host metrics history, or None."""
  for step, metrics in history:
    for name, value in metrics.items():
      if not math.isfinite(float(value)):
        return step, name, float(value)
  return None


def restore_state(checkpointer: checkpoint_lib.Checkpointer, abstract, config_dict: Dict[str, Any],
                  step: Optional[int] = None) -> TrainState:
  """The state saved at `step` (default: latest), laid out like `abstract` (which says where
  each array goes); a UserError naming what changed when the checkpoint does not fit."""
  if step is not None and step not in checkpointer.all_steps():
    raise UserError(f"no checkpoint of step {step} in {checkpointer.directory}; saved steps: "
                    f"{', '.join(map(str, checkpointer.all_steps()))}")
  changes = config_differences(checkpointer.restore_config(step), config_dict)
  misfits = checkpointer.mismatches(abstract, step)
  if misfits:
    raise UserError(
        f"the checkpoint in {checkpointer.directory} does not fit this config "
        f"(changed: {'; '.join(changes) or 'nothing'}); arrays: {'; '.join(misfits[:5])}"
        f"{f' and {len(misfits) - 5} more' if len(misfits) > 5 else ''}. Resume with the "
        "original config or start a new --workdir.")
  state, _, restored_step = checkpointer.restore(abstract, step)
  logging.info("resumed from step %d in %s", restored_step, checkpointer.directory)
  if changes:
    logging.warning("config differs from the checkpoint's: %s", "; ".join(changes))
  return state


def _is_due(step: int, every: int, last: bool) -> bool:
  return step % every == 0 or last


def iterations_this_call(step: int, per_call: int, num_steps: int, cadences) -> int:
  """How many iterations the loop runs from `step` in one device call: `per_call` when the
  window [step, step + per_call) starts at a multiple of it, ends by num_steps and has no
  multiple of any (positive) cadence strictly inside (so logging, sampling, saving and
  evaluation happen at the same steps as one iteration per call); else 1."""
  if per_call <= 1 or step % per_call or step + per_call > num_steps:
    return 1
  for every in cadences:
    if every > 0 and (step // every + 1) * every < step + per_call:
      return 1
  return per_call


def _unstack(history):
  """[(done, metrics, count)] -> [(step, metrics)] with one row per iteration (calls of
  `count` > 1 iterations deliver their metrics stacked)."""
  rows = []
  for done, metrics, count in history:
    if count == 1:
      rows.append((done, metrics))
    else:
      rows.extend((done - count + 1 + i, {k: v[i] for k, v in metrics.items()})
                  for i in range(count))
  return rows


def train_and_evaluate(config, workdir: str) -> TrainState:
  """Trains the GAN `config` describes, writing everything to `workdir`; returns the final state."""
  # ---------------------------------------------------------------- config --
  config = with_recorded_classes(config)
  validate_config(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  config_dict = config_to_dict(config)
  num_steps = config.train.num_steps

  # --------------------------------------------------------------- devices --
  mesh = parallel.make_mesh()  # every device of every process
  parallel.check_batch_size(config.train.batch_size, mesh)
  check_d_passes(config, mesh)
  check_microbatches(config, mesh)
  primary = parallel.is_primary()  # only process 0 writes metrics, samples and progress
  replicated = parallel.replicated(mesh)
  logging.info("devices: %d x %s in %d process(es); this is process %d", mesh.size,
               jax.devices()[0].device_kind, jax.process_count(), jax.process_index())

  # ------------------------------------------------------------------ data --
  feeder, data_summary = data_lib.make_pipeline(
      config.data, batch_size=config.train.batch_size, d_steps=config.train.d_steps,
      seed=config.seed, mesh=mesh)
  logging.info("%s", data_summary)
  sample_report = data_lib.make_sample_report(config.data)

  # -------------------------------------------- models, optimizers, state --
  generator, discriminator = make_models(config)
  g_tx, d_tx = make_optimizers(config)
  init = make_init(config, generator, discriminator, g_tx, d_tx)
  abstract = jax.eval_shape(init)
  shardings = jax.tree.map(lambda _: replicated, abstract)

  # ------------------------------------------------------------ evaluation --
  # Set up now (real images, feature networks) so a missing piece stops the run before training.
  run_evaluator = (evaluate.RunEvaluator(config, generator, workdir, writes=primary,
                                         discriminator=discriminator)
                   if config.eval.every else None)

  # --------------------------------------------------------------- restore --
  checkpointer = checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), keep=config.checkpoint.keep)
  abstract_on_devices = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
  if checkpointer.latest_step() is not None:
    state = restore_state(checkpointer, abstract_on_devices, config_dict)
  elif config.checkpoint.init_from:
    directory, step = checkpoint_lib.parse_init_from(config.checkpoint.init_from)
    source = checkpoint_lib.Checkpointer(directory, keep=0, async_save=False)
    try:
      if source.latest_step() is None:
        raise UserError(f"config.checkpoint.init_from={config.checkpoint.init_from!r}: no "
                        f"checkpoint in {directory}")
      state = restore_state(source, abstract_on_devices, config_dict,
                            None if step is None else int(step))
    finally:
      source.close()
  else:
    state = jax.jit(init, out_shardings=shardings)()
    logging.info("new run in %s", workdir)
  start = int(state.step)
  logging.info("parameters: G %d, D %d", count_params(state.g_params), count_params(state.d_params))
  if start >= num_steps:
    logging.info("checkpoint is at step %d >= train.num_steps=%d: nothing to do", start, num_steps)
    checkpointer.close()
    feeder.close()
    return state

  # --------------------------------------------------------------- compile --
  step_fn = make_step(config, generator, discriminator, g_tx, d_tx)
  # A device-resident feeder's batch selection is compiled into the step (gan_jax/fed_step.py).
  per_call = config.train.get("iterations_per_call", 1)
  try:
    train_step = FedStep(step_fn, feeder, state, make_batch_spec(config, mesh),
                         (shardings, replicated), iterations_per_call=per_call)
  except ValueError as e:
    feeder.close()
    checkpointer.close()
    raise ConfigError(f"config.train.iterations_per_call={per_call}: {e}") from None
  cadences = (config.log.every, config.checkpoint.every, config.sample.every,
              config.eval.every if run_evaluator is not None else 0)
  sample_z = jax.device_put(
      sampling.fixed_latents(config.seed, config.sample.num, config.model.latent_dim,
                             config.model.latent_dist), replicated)
  sample_labels = None  # conditional runs: the grid's fixed labels, drawn from the data's
  if getattr(feeder, "label_table", None) is not None:
    sample_labels = jax.device_put(
        sampling.fixed_labels(config.seed, config.sample.num, feeder.label_table), replicated)
  sample_fn = jax.jit(lambda params, stats, z, labels: sampling.generate(
      generator, params, stats, z, labels=labels))

  def diagnose(state, batch, key):
    images, labels = split_batch(batch)
    return diagnostics.discriminator_diagnostics(
        generator, discriminator, step_fn.sample_latent, step_fn.latent_dim, state,
        batch_to_float(images[-1]), key, None if labels is None else labels[-1])
  diagnostics_fn = jax.jit(diagnose)
  diagnostics_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x64696167)

  best = None
  if run_evaluator is not None and config.eval.best:
    best = checkpoint_lib.BestCheckpoint(workdir, config.eval.best, resumed_step=start,
                                         primary=primary)

  # ------------------------------------------------------------------ loop --
  writer = writers.make_run_writer(workdir, primary)
  writer.truncate_after(start)
  # train.max_minutes: the run stops (logging, sampling, evaluating and saving as at the last
  # step) at the first step that ends after this wall-clock time in the loop (by process 0's
  # clock in a multi-process run, so that every process stops at the same step).
  max_minutes = config.train.get("max_minutes", 0)
  deadline = time.monotonic() + 60.0 * max_minutes if max_minutes else math.inf
  progress = writers.Progress(num_steps, start, config.train.batch_size, deadline=deadline,
                              quiet=not primary)
  pending = []  # (step, metrics on device, iterations) not yet checked for NaN/Inf
  done = start
  try:
    while done < num_steps:
      count = iterations_this_call(done, per_call, num_steps, cadences)
      state, metrics = train_step(state, done) if count == 1 else train_step.many(state)
      done += count
      pending.append((done, metrics, count))
      last = done == num_steps or (
          bool(max_minutes) and parallel.process_zero_says(time.monotonic() >= deadline))
      log_now = _is_due(done, config.log.every, last)
      save_now = _is_due(done, config.checkpoint.every, last)
      sample_now = _is_due(done, config.sample.every, last)
      eval_now = run_evaluator is not None and _is_due(done, config.eval.every, last)
      if not (log_now or save_now or sample_now or eval_now):
        continue
      # NaN guard: nothing is logged, sampled or saved past a non-finite value.
      history, pending = _unstack(jax.device_get(pending)), []
      bad = first_non_finite(history)
      if bad is not None:
        checkpointer.wait()
        last_good = checkpointer.latest_step()
        raise NonFiniteError(
            f"{bad[1]} became {bad[2]} at step {bad[0]}; training stopped. The last "
            f"good checkpoint (step {last_good}) is intact in {checkpointer.directory}: "
            "rerunning resumes from it (lower the learning rates or change the loss first).")
      scalars = {}
      if log_now:
        scalars = {k: float(v) for k, v in history[-1][1].items()}
        scalars.update(scheduled_values(config, done - 1))
        if config.log.diagnostics:
          scalars.update({k: float(v) for k, v in jax.device_get(diagnostics_fn(
              state, train_step.last_batch(done - 1),
              jax.random.fold_in(diagnostics_key, done))).items()})
        scalars.update(progress.update(done, scalars))
      if sample_now:
        picture, scores = sample_report(
            np.asarray(sample_fn(state.ema_params, state.g_stats, sample_z, sample_labels)))
        writer.write_samples(done, picture)
        if scores:
          progress.write(f"step {done} samples: {writers.format_scalars(scores)}")
          scalars.update(scores)
      if eval_now:
        report, eval_scalars = run_evaluator(done, state)
        progress.write(f"step {done} eval: {writers.format_scalars(eval_scalars)}")
        scalars.update(eval_scalars)
        if best is not None:
          value = evaluator_lib.headline(report, best.metric)
          # Process 0's verdict on every process: saving is a collective.
          better = parallel.process_zero_says(
              evaluator_lib.is_better(best.metric, value, best.value))
          if best.offer(done, value, better, state, config_dict):
            logging.info("best %s so far (%g) at step %d: saved in %s", best.metric, value,
                         done, best.directory)
      if scalars:
        writer.write_scalars(done, scalars)
      if save_now:
        checkpointer.save(done, state, config_dict)
      writer.flush()
      if last:
        break
  finally:
    progress.close()
    writer.close()
    if best is not None:
      best.close()
    checkpointer.close()
    feeder.close()
  if feeder.skipped_counts():
    logging.warning("unusable images replaced while feeding: %s", feeder.skipped_counts())
  if done < num_steps:
    logging.info("train.max_minutes=%g reached: stopped at step %d of %d (rerun to go on); "
                 "outputs in %s", max_minutes, done, num_steps, workdir)
  else:
    logging.info("finished step %d; outputs in %s", num_steps, workdir)
  return state
