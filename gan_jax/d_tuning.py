"""A run's discriminator trained on alone against its frozen EMA generator (config.eval.mh_tune).

The Metropolis-Hastings correction (config.eval.mh_steps; gan_jax/rejection.py) reads D's
logit as log p_data(x) - log p_G(x), which holds for the lectures' optimal D* = p_data /
(p_data + p_G) of the generator that is sampled. The D a run saves is not that: it was
trained against G's latest iterates, while evaluation samples the EMA generator, and on a
32x32 DCGAN its correction made FD-anime worse (benchmarks/mh_images.md). With G frozen at
its EMA, D's own objective is max_D V(G, D) of a fixed G, whose optimum is D*, so training D
on alone moves it towards the D the correction needs (DRS, Azadi et al., 2019, fine-tunes D
the same way; lab.tune_against_ema does it on the toy data).

`make_tuner` gives the update loop: the run's D loss, penalties, augmentation and D
optimizer state (restored with the checkpoint), D in train mode so that its BatchNorm
statistics follow the EMA generator's samples; the generator's parameters never change.
Batch i is train.batch_size rows drawn with replacement by np.random.default_rng([seed,
stream]) and its key is fold_in(fold_in(PRNGKey(seed), stream), i), so a tuning is
reproducible and its first n updates are any longer tuning's first n. The logit is a log
density ratio only at the optimum of a minimax or non-saturating loss; a hinge or
Wasserstein D can be tuned with the non-saturating loss instead (config.eval.mh_tune_loss),
as the DRS paper fine-tunes its D with binary cross-entropy.
"""

from typing import Callable, Optional

import jax
import numpy as np

from gan_jax.state import TrainState
from gan_jax.step import batch_to_float

_TUNE_STREAM = 0x74756e65  # the tuning batches and keys: apart from training's and evaluation's

Tuner = Callable[..., TrainState]


def make_tuner(config, generator, discriminator, loss: str = "") -> Tuner:
  """f(state, images, labels, updates, rows=None) -> the state with G set to its EMA and D
  trained `updates` more times against it (module docstring) on uint8 `images` (N, H, W, C),
  with their int32 `labels` (N, heads) in conditional runs (else None), drawing only from
  `rows` of them when given (else all; only the rows drawn are read, so `images` may be a
  memory map); the step counter advances by `updates` (schedules that read it, such as
  lazy penalties, go on from the run's step).
  `loss` names the loss D is tuned with instead of the run's (losses.LOSSES): a minimax or
  non_saturating D's optimum is D*, whose logit is the log density ratio, so tuning a hinge
  or Wasserstein D with it calibrates its logits for the correction (DRS's fine-tuning).
  ValueError for negative `updates`, no images, or a loss that does not fit D."""
  from gan_jax import train  # pylint: disable=g-import-not-at-top  (train imports evaluate)
  if loss:
    config = config.copy_and_resolve_references()
    config.loss.name = loss
  g_tx, d_tx = train.make_optimizers(config)
  step_fn = train.make_step(config, generator, discriminator, g_tx, d_tx)

  @jax.jit
  def update(state, real, key, labels):
    state, _ = step_fn.d_update(state, batch_to_float(real), key, labels)
    return state.replace(step=state.step + 1)

  def tune(state: TrainState, images: np.ndarray, labels: Optional[np.ndarray],
           updates: int, rows: Optional[np.ndarray] = None) -> TrainState:
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    if updates < 0:
      raise ValueError(f"D tuning needs updates >= 0, got {updates}")
    if not len(rows):
      raise ValueError("D tuning needs training images, got none")
    state = state.replace(g_params=state.ema_params)
    rng = np.random.default_rng([config.seed, _TUNE_STREAM])
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), _TUNE_STREAM)
    for i in range(updates):
      drawn = rows[rng.integers(0, len(rows), config.train.batch_size)]
      state = update(state, np.asarray(images[drawn]), jax.random.fold_in(key, i),
                     None if labels is None else np.asarray(labels[drawn]))
    return state

  return tune
