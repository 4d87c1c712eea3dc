"""The pure GAN train step: `d_steps` discriminator updates, then one generator update.

`GANStep` is built once from the run's pieces (models, loss, optimizers, latent
sampler, EMA settings) and is a pure function of (state, batch); jit it with
the state donated. Nothing here reads the config or does I/O, so swapping a
loss, model or optimizer never touches this file.

Randomness: iteration t uses k = fold_in(state.key, t); D update i uses
k_i = fold_in(k, i) (z from fold_in(k_i, 0), penalty j from fold_in(k_i, 1 + j))
and the G update fold_in(k, d_steps). A resumed run and an uninterrupted run
therefore perform the same computation.

Augmentation (DiffAugment, gan_jax/augment.py; only when `augment` is set):
every image D sees in the step is augmented, in both updates: D's loss is on
D(T(real)) and D(T(fake)), and G's loss on D(T(G(z))) with G's gradient flowing
back through T (and D(T(real)) for the relativistic losses). Penalties get the
same augmented real and fake batches D's loss saw, so they constrain D where it
is evaluated (their input gradient is taken w.r.t. the augmented images, not,
as DiffAugment's StyleGAN2 R1 does, back through T to the raw reals). d_real
and d_fake are then D's mean logits on augmented images. Within an update with
key k_u (a D update's k_i or the G update's key), the augmentation of the reals
draws from fold_in(fold_in(k_u, AUGMENT_STREAM), 0) and that of the fakes from
fold_in(..., 1), so augmented runs stay reproducible and resume exactly. With
`augment` None the step is exactly the unaugmented one.

Data parallelism: under `jax.jit` with the image batch sharded along the mesh's
`data` axis and the state replicated, XLA runs one copy of this step per device
on its slice of the batch and all-reduces the gradients (the mean over the
global batch), which is pmap's data-parallel semantics. BatchNorm statistics are
likewise computed over the global batch (synchronised BatchNorm), so the result
does not depend on the number of devices (up to float summation order).
"""

import dataclasses
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import precision
from gan_jax.latents import LatentSampler
from gan_jax.losses import LossFn
from gan_jax.state import TrainState

Metrics = Dict[str, jax.Array]

# fold_in constant of the augmentation's key stream within an update (apart from
# z's key, and from the penalties' fold_in(k_i, 1 + j)): 'aug' in ASCII.
AUGMENT_STREAM = 0x617567


def batch_to_float(batch: jax.Array) -> jax.Array:
  """The model's view of a data batch: uint8 images in [0, 255] -> float32 in [-1, 1];
  float data (the toy lab's points) as it is."""
  if jnp.issubdtype(batch.dtype, jnp.floating):
    return batch
  if batch.dtype != jnp.uint8:
    raise TypeError(f"data batches are uint8 images or floats, got {batch.dtype}")
  return batch.astype(jnp.float32) / 127.5 - 1.0


def apply_in_train_mode(module: nn.Module, params: Any, stats: Any, x: jax.Array,
                        dtype: Optional[Any] = None) -> Tuple[jax.Array, Any]:
  """`module` on `x` in train mode, and its BatchNorm statistics updated by this batch.

  With a compute `dtype` (gan_jax/precision.py) the parameters and `x` are cast to
  it for the call; the output comes back as float32 and the statistics in their
  own dtypes.
  """
  if dtype is not None:
    in_dtype = x.dtype
    out, new_stats = apply_in_train_mode(module, precision.cast_floats(params, dtype), stats,
                                         x.astype(dtype))
    return out.astype(in_dtype), precision.like(new_stats, stats)
  if not stats:
    return module.apply({"params": params}, x, train=True), stats
  out, mutated = module.apply({"params": params, "batch_stats": stats}, x,
                              train=True, mutable=["batch_stats"])
  return out, mutated["batch_stats"]


def ema_decay_at(step: jax.Array, decay: float, rampup: bool) -> jax.Array:
  """EMA decay used after iteration `step`: min(decay, (1+t)/(10+t)) with ramp-up."""
  decay = jnp.asarray(decay, jnp.float32)
  if not rampup:
    return decay
  t = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + t) / (10.0 + t))


class Penalty(NamedTuple):
  """A discriminator penalty as the step applies it: weight * fn every `every` iterations."""
  name: str
  fn: Callable[..., jax.Array]  # (d_fn, real, fake, key) -> scalar, options bound
  weight: float
  every: int = 1  # lazy regularisation: apply every N iterations, scaled by N


@dataclasses.dataclass(frozen=True)
class GANStep:
  """One training iteration as a pure function; see the module docstring."""
  generator: nn.Module
  discriminator: nn.Module
  loss_fn: LossFn
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  sample_latent: LatentSampler
  latent_dim: int
  ema_decay: float = 0.999
  ema_rampup: bool = True
  penalties: Tuple[Penalty, ...] = ()
  augment: Optional[Callable[[jax.Array, jax.Array], jax.Array]] = None  # (key, x) -> x
  compute_dtype: Optional[Any] = None  # e.g. jnp.bfloat16 (precision.py); None: float32

  def _g(self, params: Any, stats: Any, z: jax.Array) -> Tuple[jax.Array, Any]:
    """G on z in train mode, in the compute dtype: (images, updated statistics)."""
    return apply_in_train_mode(self.generator, params, stats, z, self.compute_dtype)

  def _d(self, params: Any, stats: Any, x: jax.Array) -> Tuple[jax.Array, Any]:
    """D on x in train mode, in the compute dtype: (float32 logits, updated statistics)."""
    return apply_in_train_mode(self.discriminator, params, stats, x, self.compute_dtype)

  def _augmented(self, key: jax.Array, x: jax.Array, which: int) -> jax.Array:
    """x as D sees it in the update with `key`: augmented from the stream's draw `which`
    (0 reals, 1 fakes) when augmentation is on, else x itself."""
    if self.augment is None:
      return x
    return self.augment(jax.random.fold_in(jax.random.fold_in(key, AUGMENT_STREAM), which), x)

  def _penalty_terms(self, state: TrainState, d_params: Any, real: jax.Array,
                     fake: jax.Array, key: jax.Array) -> Dict[str, jax.Array]:
    """{name_penalty: value} of every configured penalty (0 on its off-iterations)."""
    def d_fn(x):
      return self._d(d_params, state.d_stats, x)[0]

    values = {}
    for i, penalty in enumerate(self.penalties):
      penalty_key = jax.random.fold_in(key, 1 + i)
      compute = lambda p=penalty, k=penalty_key: p.fn(d_fn, real, fake, k) * p.every
      if penalty.every > 1:
        value = jax.lax.cond(state.step % penalty.every == 0, compute,
                             lambda: jnp.zeros((), jnp.float32))
      else:
        value = compute()
      values[f"{penalty.name}_penalty"] = value
    return values

  def d_update(self, state: TrainState, real: jax.Array,
               key: jax.Array) -> Tuple[TrainState, Metrics]:
    """One discriminator update on float `real` (images in [-1, 1]) and fresh fakes; G is untouched.

    z comes from fold_in(key, 0), penalty i's randomness from fold_in(key, 1 + i), the
    augmentation (if any) from fold_in(key, AUGMENT_STREAM); D's loss and the penalties
    see the augmented real and fake batches.
    """
    z = self.sample_latent(jax.random.fold_in(key, 0), (real.shape[0], self.latent_dim))
    fake, _ = self._g(state.g_params, state.g_stats, z)
    fake = jax.lax.stop_gradient(fake)
    real, fake = self._augmented(key, real, 0), self._augmented(key, fake, 1)

    def loss(d_params):
      real_logits, stats = self._d(d_params, state.d_stats, real)
      fake_logits, stats = self._d(d_params, stats, fake)
      d_loss = self.loss_fn(real_logits, fake_logits).d_loss
      penalties = self._penalty_terms(state, d_params, real, fake, key)
      total = d_loss + sum(p.weight * penalties[f"{p.name}_penalty"] for p in self.penalties)
      return total, (stats, real_logits, fake_logits, d_loss, penalties)

    (_, (stats, real_logits, fake_logits, d_loss, penalties)), grads = jax.value_and_grad(
        loss, has_aux=True)(state.d_params)
    updates, opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params)
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_stats=stats, d_opt_state=opt_state)
    return state, {
        "d_loss": d_loss,
        "d_real": jnp.mean(real_logits),
        "d_fake": jnp.mean(fake_logits),
        "d_grad_norm": optax.tree.norm(grads),
        **penalties,
    }

  def g_update(self, state: TrainState, real: jax.Array,
               key: jax.Array) -> Tuple[TrainState, Metrics]:
    """One generator update (and its EMA) against the current D; D is untouched.

    `real` is passed for losses whose G term looks at D(real) (relativistic
    ones); for the others XLA removes that forward pass as dead code.
    """
    z = self.sample_latent(key, (real.shape[0], self.latent_dim))
    real_logits, _ = self._d(state.d_params, state.d_stats, self._augmented(key, real, 0))
    real_logits = jax.lax.stop_gradient(real_logits)

    def loss(g_params):
      fake, g_stats = self._g(g_params, state.g_stats, z)
      fake_logits, _ = self._d(state.d_params, state.d_stats, self._augmented(key, fake, 1))
      return self.loss_fn(real_logits, fake_logits).g_loss, g_stats

    (g_loss, g_stats), grads = jax.value_and_grad(loss, has_aux=True)(state.g_params)
    updates, opt_state = self.g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    decay = ema_decay_at(state.step, self.ema_decay, self.ema_rampup)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                       state.ema_params, g_params)
    state = state.replace(g_params=g_params, g_stats=g_stats,
                          g_opt_state=opt_state, ema_params=ema)
    return state, {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(grads)}

  def __call__(self, state: TrainState, batch: jax.Array) -> Tuple[TrainState, Metrics]:
    """One iteration on a data batch (d_steps, batch_size, *example_shape): uint8 images
    or float points (see batch_to_float).

    Discriminator metrics are averaged over the D updates of the iteration.
    """
    real = batch_to_float(batch)
    d_steps = real.shape[0]
    key = jax.random.fold_in(state.key, state.step)
    # A Python loop (unrolled at trace time), not lax.scan: XLA's CPU backend
    # runs the convolutions inside a scan ~10x slower, and d_steps is small.
    d_metrics = []
    for i in range(d_steps):
      state, metrics = self.d_update(state, real[i], jax.random.fold_in(key, i))
      d_metrics.append(metrics)
    d_metrics = jax.tree.map(lambda *m: jnp.mean(jnp.stack(m)), *d_metrics)
    state, g_metrics = self.g_update(state, real[-1], jax.random.fold_in(key, d_steps))
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}
