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
is evaluated. Where their input gradient is taken is `penalty_grad`:
'augmented' (default) w.r.t. the augmented images, grad_y D(y) at y = T(x);
'through' w.r.t. the raw images back through T, grad_x D(T(x)), as StyleGAN2-ADA's
and DiffAugment's R1 do: the penalties then get the raw real and fake batches and
D composed with one draw of T, the reals' (so R1 sees exactly the augmented reals
D's loss saw, and a fake or interpolated batch gets the same per-sample transforms
as the reals). d_real
and d_fake are then D's mean logits on augmented images. Within an update with
key k_u (a D update's k_i or the G update's key), the augmentation of the reals
draws from fold_in(fold_in(k_u, AUGMENT_STREAM), 0) and that of the fakes from
fold_in(..., 1), so augmented runs stay reproducible and resume exactly. With
`augment` None the step is exactly the unaugmented one.

Adaptive augmentation (StyleGAN2-ADA; only when `ada` is set): the probability p
with which each augmentation applies to each sample is state, d_stats['ada_p'],
used by every augmentation of the iteration. After the iteration it moves by
sign(r - target) * n / (kimg * 1000), clipped to [0, 1], where r = mean over the
iteration's D updates of E[sign D(T(real))] (ADA's overfitting heuristic r_t) and
n = d_steps * batch the real images D saw: so p can cross [0, 1] in `kimg`
thousand images. The paper adjusts every 4 minibatches from r accumulated over
them; here every iteration, by the same amount per image.

BEGAN's equilibrium (only when `equilibrium` is set; with losses.began on an auto-encoder
D, models/began.py, whose logits are minus reconstruction errors L): the weight k of
L(G(z)) in D's loss is state, d_stats['began_k'], passed to the loss as `k`. After each D
update, k <- clip(k + lambda_k * (gamma * L(x) - L(G(z))), 0, 1), with L(x) and L(G(z))
the batch means that update's loss saw, so that k steers E[L(G(z))] towards gamma *
E[L(x)]. The metrics began_k (the k the update used, averaged over the D updates) and
began_convergence, BEGAN's M_global = L(x) + |gamma * L(x) - L(G(z))|, come with it.

Progressive growing (only when `growth` is set; with models/progan.py, whose networks
read their resolution from their statistics): before the iteration's updates both
g_stats[GROWTH_LEVEL] and d_stats[GROWTH_LEVEL] are set to growth_level(step), a pure
function of the iteration count (0 for stable_iters iterations, then per next resolution a
linear fade-in over fade_iters and stable_iters at the whole level), so the level needs no
state of its own to resume exactly, and samples drawn from the checkpointed g_stats use
the level the weights were trained at. The metric growth_level comes with it.

Generator randomness beyond z (only when configured; each from its own stream of
the update's key k_u, so a run without them draws exactly as before):
  * g_rngs (e.g. ('noise',) for StyleGAN2's per-layer noise inputs,
    noise_mode='random'): G's train-mode calls get rngs={name_j:
    fold_in(fold_in(k_u, NOISE_STREAM), j)}, fresh per update.
  * style_mixing p > 0 (StyleGAN2's mixing regularisation): per sample, with
    probability p, G's w slots from a random crossover c in [1, num_ws) on come
    from a second latent z2. With m = fold_in(k_u, MIXING_STREAM): z2 from
    fold_in(m, 0), the per-sample coin from fold_in(m, 1), c from fold_in(m, 2).
    Applies to the fakes of the D updates and of the G update alike.
  * path_length (StyleGAN2's path-length regularisation, G's loss only): on
    iterations with step % every == 0 G's loss adds every * weight *
    mean_i (|J_i^T y_i| - a)^2 over batch // batch_shrink fresh latents, where
    J_i is the Jacobian of image i w.r.t. its ws, y_i ~ N(0, I) / sqrt(H * W)
    and a the running mean of the lengths (g_stats['pl_mean'], a <- a + decay *
    (mean length - a), updated before use, as in StyleGAN2-ADA); unlike the
    paper it is added to the ordinary G update instead of a separate one. With
    q = fold_in(k_u, PATH_LENGTH_STREAM): its z from fold_in(q, 0), y from
    fold_in(q, 1), G's rngs and mixing as above with q in place of k_u.
  * lazy regularisation (a penalty's `every`, path length's): the off-iterations skip
    the term (lazy_branching='cond', a lax.cond) or compute it and drop it ('select',
    the faster form on XLA's CPU backend; gan_jax/branching.py); the same values.

Class labels (conditional runs, config.data.labels): the batch is then a
LabeledBatch(images, labels) (gan_jax/data/labels.py), labels int32 (d_steps,
batch, heads). D sees each real image with its own label; the fakes of a D
update are generated from the same labels as that update's reals (so they
follow the data's label distribution exactly, and every penalty, which sees
reals, fakes and their interpolations, evaluates D with that one label
vector); the G update generates from the last D update's labels and D judges
its fakes with them. No extra randomness is drawn, so the key streams above are
unchanged. With `ac_weight` > 0 (AC-GAN) D's loss adds ac_weight * the
cross-entropy of D's auxiliary classifier on the real and the fake images
(summed over label heads) and G's loss ac_weight * its cross-entropy on the
fakes. A plain image batch (no labels) runs exactly the unconditional step.

Gradient accumulation (`microbatches` m > 1; for batches whose activations do not fit in
memory): every D and G update computes its gradient as the mean of the gradients of m
micro-batches of batch / m examples, one after the other in a lax.scan, and then takes one
optimizer step. Micro-batch j holds examples j, j + m, j + 2m, ... of the batch, so that
with the batch sharded over the data axis (per-device rows a multiple of m) every device
keeps its own rows. z is drawn for the whole batch as above and split the same way; every
other draw of the update (G's fakes' extra randomness, the augmentation, the penalties)
uses micro-batch j's key fold_in(fold_in(k_u, MICROBATCH_STREAM), j) in place of k_u. With
m = 1 nothing is split and the step is exactly the one above. For a loss that is a mean over
examples, a network without batch statistics and no per-update draws besides z, the
accumulated gradient is the full batch's (to float rounding). Batch statistics
(BatchNorm, minibatch standard deviation) are per micro-batch, and the state they update
(running averages, the spectral norm's power iteration, StyleGAN2's path-length mean) is
threaded through the micro-batches, advancing m times per update, as in StyleGAN2-ADA's and
StudioGAN's accumulation. Metrics are means over the micro-batches; BEGAN's k moves once
per update, from the whole batch's logits.

Data parallelism: under `jax.jit` with the image batch sharded along the mesh's
`data` axis and the state replicated, XLA runs one copy of this step per device
on its slice of the batch and all-reduces the gradients (the mean over the
global batch), which is pmap's data-parallel semantics. BatchNorm statistics are
likewise computed over the global batch (synchronised BatchNorm), so the result
does not depend on the number of devices (up to float summation order).
"""

import dataclasses
import math
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import branching, precision
from gan_jax.latents import LatentSampler
from gan_jax.losses import LossFn
from gan_jax.registry import check_choice
from gan_jax.state import TrainState

Metrics = Dict[str, jax.Array]

# fold_in constant of the augmentation's key stream within an update (apart from
# z's key, and from the penalties' fold_in(k_i, 1 + j)): 'aug' in ASCII.
AUGMENT_STREAM = 0x617567
# fold_in constants of G's extra randomness within an update (module docstring):
NOISE_STREAM = 0x6e6f6973        # 'nois': G's rngs (noise inputs)
MIXING_STREAM = 0x6d6978         # 'mix': style mixing's z2, coins and crossovers
PATH_LENGTH_STREAM = 0x706c656e  # 'plen': path-length regularisation
MICROBATCH_STREAM = 0x6d696372   # 'micr': the keys of an update's micro-batches (m > 1)
ADA_P = "ada_p"  # d_stats' entry holding ADA's augmentation probability (module docstring)
BEGAN_K = "began_k"  # d_stats' entry holding BEGAN's equilibrium weight k (module docstring)
GROWTH_LEVEL = "growth_level"  # g_stats' and d_stats' entry: ProGAN's growth level (docstring)


def batch_to_float(batch: jax.Array) -> jax.Array:
  """The model's view of a data batch: uint8 images in [0, 255] -> float32 in [-1, 1];
  float data (the toy lab's points) as it is."""
  if jnp.issubdtype(batch.dtype, jnp.floating):
    return batch
  if batch.dtype != jnp.uint8:
    raise TypeError(f"data batches are uint8 images or floats, got {batch.dtype}")
  return batch.astype(jnp.float32) / 127.5 - 1.0


def apply_in_train_mode(module: nn.Module, params: Any, stats: Any, x: jax.Array,
                        labels: Optional[jax.Array] = None, dtype: Optional[Any] = None,
                        **kwargs) -> Tuple[Any, Any]:
  """`module` on `x` (with `labels`, for a conditional module, and `kwargs` such as
  return_aux, rngs or z2) in train mode, and its BatchNorm statistics updated by this batch.

  With a compute `dtype` (gan_jax/precision.py) the parameters, `x` and float array
  kwargs are cast to it for the call; the outputs come back in x's dtype and the statistics in their
  own dtypes.
  """
  if dtype is not None:
    kwargs = {k: v.astype(dtype) if isinstance(v, jax.Array) and jnp.issubdtype(
        v.dtype, jnp.floating) else v for k, v in kwargs.items()}
    out, new_stats = apply_in_train_mode(module, precision.cast_floats(params, dtype), stats,
                                         x.astype(dtype), labels, **kwargs)
    return precision.cast_floats(out, x.dtype), precision.like(new_stats, stats)
  args = (x,) if labels is None else (x, labels)
  if not stats:
    return module.apply({"params": params}, *args, train=True, **kwargs), stats
  out, mutated = module.apply({"params": params, "batch_stats": stats}, *args,
                              train=True, mutable=["batch_stats"], **kwargs)
  return out, mutated["batch_stats"]


def split_batch(batch: Any) -> Tuple[jax.Array, Optional[jax.Array]]:
  """(images, labels) of a data batch: a LabeledBatch (any (images, labels) tuple) or a
  plain array (labels None)."""
  if isinstance(batch, tuple):
    return batch[0], batch[1]
  return batch, None


def class_cross_entropy(aux_logits: Dict[str, jax.Array], labels: jax.Array) -> jax.Array:
  """Mean over the batch of the AC-GAN classifier's cross-entropy, summed over label heads
  (aux_logits {str(head): (batch, classes)}, labels (batch, heads))."""
  return sum(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
      aux_logits[str(h)], labels[:, h])) for h in range(labels.shape[1]))


def ema_decay_at(step: jax.Array, decay, rampup: bool) -> jax.Array:
  """EMA decay used after iteration `step`: `decay` (a number, or a function of the
  iteration), min(decay, (1+t)/(10+t)) with ramp-up."""
  decay = jnp.asarray(decay(step) if callable(decay) else decay, jnp.float32)
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
  annealed: Optional[Callable[[jax.Array], jax.Array]] = None  # iteration -> weight (None:
                                                               # `weight` throughout)

  def weight_at(self, iteration: jax.Array):
    """The weight in iteration `iteration`."""
    return self.weight if self.annealed is None else self.annealed(iteration)


class PathLength(NamedTuple):
  """StyleGAN2's path-length regulariser as the step applies it (module docstring)."""
  weight: float = 2.0
  every: int = 4          # lazy regularisation: every N iterations, scaled by N
  decay: float = 0.01     # of the running mean of path lengths
  batch_shrink: int = 2   # evaluated on batch // batch_shrink latents


class Ada(NamedTuple):
  """StyleGAN2-ADA's adaptive augmentation probability as the step applies it (module
  docstring)."""
  target: float = 0.6  # the value of r = E[sign D(T(real))] that p steers towards
  kimg: float = 500.0  # thousands of real images over which p can move by 1


class Growth(NamedTuple):
  """Progressive growing's schedule as the step applies it (module docstring)."""
  max_level: int     # the growth level of full resolution (models/progan.py)
  stable_iters: int  # iterations spent at each whole level, level 0 included
  fade_iters: int    # iterations over which each next resolution fades in


def growth_level(step: jax.Array, growth: Growth) -> jax.Array:
  """The growth level (float32) for iteration `step`: 0 for stable_iters iterations, then
  per next level a linear fade over fade_iters and stable_iters at the whole level, up to
  max_level (at once with both counts 0)."""
  period = growth.stable_iters + growth.fade_iters
  if period == 0:
    return jnp.asarray(growth.max_level, jnp.float32)
  t = jnp.asarray(step).astype(jnp.float32) - growth.stable_iters
  whole = jnp.floor(t / period)
  into = t - whole * period
  fade = 1.0 if growth.fade_iters == 0 else jnp.minimum(into / growth.fade_iters, 1.0)
  level = jnp.where(t < 0, 0.0, whole + fade)
  return jnp.minimum(level, float(growth.max_level)).astype(jnp.float32)


class Equilibrium(NamedTuple):
  """BEGAN's equilibrium controller as the step applies it (module docstring)."""
  gamma: float = 0.5      # the diversity ratio E[L(G(z))] / E[L(x)] that k steers towards
  lambda_k: float = 0.001  # k's learning rate


D_LOOPS = ("unroll", "scan")
D_PASSES = ("separate", "fused")
LAZY_BRANCHINGS = ("cond", branching.SELECT)  # train.lazy_branching (branching.resolve)
PENALTY_GRADS = ("augmented", "through")


def split_microbatches(x: jax.Array, m: int) -> jax.Array:
  """(m, batch / m, ...) micro-batches of `x` (batch, ...): micro-batch j holds rows j, j + m,
  j + 2m, ... (so that a batch sharded over devices splits locally)."""
  return jnp.swapaxes(x.reshape(x.shape[0] // m, m, *x.shape[1:]), 0, 1)


def join_microbatches(x: jax.Array) -> jax.Array:
  """The batch (batch, ...) in its original order from micro-batches (m, batch / m, ...); the
  inverse of split_microbatches."""
  return jnp.swapaxes(x, 0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _mean_of_halves(leaf: jax.Array) -> jax.Array:
  """One state leaf from the (2, ...) updates of a fused D pass's two halves: their mean
  (float leaves), else the first half's value."""
  return jnp.mean(leaf, axis=0) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf[0]


def check_microbatches(microbatches: int, batch_size: int) -> None:
  """ValueError unless `microbatches` is a positive divisor of `batch_size`."""
  if microbatches < 1 or batch_size % microbatches:
    raise ValueError(f"microbatches={microbatches} must be a positive divisor of the batch "
                     f"size {batch_size}")


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
  ema_decay: Union[float, Callable[[jax.Array], jax.Array]] = 0.999  # or iteration -> decay
  ema_rampup: bool = True
  penalties: Tuple[Penalty, ...] = ()
  augment: Optional[Callable[[jax.Array, jax.Array], jax.Array]] = None  # (key, x) -> x
  ac_weight: float = 0.0  # AC-GAN cross-entropy weight (conditional runs; 0: none)
  compute_dtype: Optional[Any] = None  # e.g. jnp.bfloat16 (precision.py); None: float32
  g_rngs: Tuple[str, ...] = ()  # rng streams G's train-mode calls get (StyleGAN2: 'noise')
  style_mixing: float = 0.0  # per-sample mixing probability (G must take z2, mix_layer)
  path_length: Optional[PathLength] = None  # G-side regulariser (G must have ws, synthesize)
  d_loop: str = "unroll"  # the d_steps D updates: unroll (a Python loop) | scan (lax.scan)
  d_passes: str = "separate"  # D's loss on reals and fakes: separate calls | fused (one call)
  penalty_grad: str = "augmented"  # with augment: penalties' input gradient w.r.t. augmented
                                   # images | through (w.r.t. raw images, through T)
  ada: Optional[Ada] = None  # adaptive augmentation probability (needs augment; d_stats[ADA_P])
  augment_p: Optional[Callable[[jax.Array], jax.Array]] = None  # iteration -> the augmentation
                                                                # probability (annealed)
  equilibrium: Optional[Equilibrium] = None  # BEGAN's k controller (losses.began; d_stats[BEGAN_K])
  growth: Optional[Growth] = None  # ProGAN's growth schedule (g_stats and d_stats[GROWTH_LEVEL])
  microbatches: int = 1  # gradient accumulation: each update over this many micro-batches
  lazy_branching: str = "cond"  # lazy regularisers' off-iterations: cond (skipped: lax.cond)
                                # | select (computed, then dropped; gan_jax/branching.py)

  def _accumulate(self, loss: Callable[..., Any], params: Any, stats: Any, batch: Any,
                  key: jax.Array) -> Tuple[Any, Any, Any, Metrics]:
    """(gradient, statistics, per-example outputs, scalar outputs) of an update whose loss
    is `loss(params, stats, batch, key)` -> (total, (new stats, per-example outputs, scalar
    outputs)), over the update's micro-batches (module docstring): the mean gradient, the
    statistics threaded through them, the per-example outputs joined back into batch order
    and the scalar outputs averaged. `batch` is a tree of arrays (batch, ...) and Nones."""
    grad_fn = jax.value_and_grad(loss, has_aux=True)
    m = self.microbatches
    if m == 1:
      (_, (stats, per_example, scalars)), grads = grad_fn(params, stats, batch, key)
      return grads, stats, per_example, scalars
    micro_key = jax.random.fold_in(key, MICROBATCH_STREAM)
    keys = jax.vmap(lambda j: jax.random.fold_in(micro_key, j))(jnp.arange(m))

    def one(carry, inputs):
      stats, total = carry
      micro_batch, micro_key = inputs
      (_, (stats, per_example, scalars)), grads = grad_fn(params, stats, micro_batch,
                                                          micro_key)
      return (stats, jax.tree.map(jnp.add, total, grads)), (per_example, scalars)

    micro_batches = jax.tree.map(lambda x: split_microbatches(x, m), batch)
    (stats, total), (per_example, scalars) = jax.lax.scan(
        one, (stats, jax.tree.map(jnp.zeros_like, params)), (micro_batches, keys))
    return (jax.tree.map(lambda g: g / m, total), stats,
            jax.tree.map(join_microbatches, per_example),
            jax.tree.map(lambda v: jnp.mean(v, axis=0), scalars))

  def _g_options(self, key: jax.Array, batch: int) -> Dict[str, Any]:
    """The keyword arguments of G's train-mode call in the update with `key`: its rngs and
    style mixing's z2, mix_layer (none when not configured; module docstring)."""
    options = {}
    if self.g_rngs:
      noise_key = jax.random.fold_in(key, NOISE_STREAM)
      options["rngs"] = {name: jax.random.fold_in(noise_key, j)
                         for j, name in enumerate(self.g_rngs)}
    if self.style_mixing:
      mix_key = jax.random.fold_in(key, MIXING_STREAM)
      num_ws = self.generator.num_ws
      options["z2"] = self.sample_latent(jax.random.fold_in(mix_key, 0),
                                         (batch, self.latent_dim))
      coin = jax.random.uniform(jax.random.fold_in(mix_key, 1), (batch,)) < self.style_mixing
      cutoff = jax.random.randint(jax.random.fold_in(mix_key, 2), (batch,), 1, num_ws)
      options["mix_layer"] = jnp.where(coin, cutoff, num_ws)
    return options

  def _g(self, params: Any, stats: Any, z: jax.Array, labels: Optional[jax.Array],
         key: Optional[jax.Array] = None) -> Tuple[jax.Array, Any]:
    """G on z (and labels) in train mode, in the compute dtype: (images, updated statistics).
    `key` (the update's) draws G's extra randomness (see _g_options)."""
    options = {} if key is None else self._g_options(key, z.shape[0])
    return apply_in_train_mode(self.generator, params, stats, z, labels, self.compute_dtype,
                               **options)

  def _path_length_penalty(self, params: Any, stats: Any, batch: int, key: jax.Array,
                           labels: Optional[jax.Array] = None) -> Tuple[jax.Array, jax.Array]:
    """(mean_i (|J_i^T y_i| - a')^2, a') with a' the updated running mean of path lengths
    (module docstring), on batch // batch_shrink fresh latents (with the first as many of
    the update's `labels`, for a conditional G); G in the compute dtype."""
    options = self.path_length
    key = jax.random.fold_in(key, PATH_LENGTH_STREAM)
    n = max(1, batch // options.batch_shrink)
    z = self.sample_latent(jax.random.fold_in(key, 0), (n, self.latent_dim))
    g_options = self._g_options(key, n)
    rngs = g_options.pop("rngs", None)
    dtype = self.compute_dtype or jnp.float32
    variables = {"params": precision.cast_floats(params, dtype), "batch_stats": stats}
    g_options = precision.cast_floats(g_options, dtype)  # z2; mix_layer stays int
    args = (z.astype(dtype),) if labels is None else (z.astype(dtype), labels[:n])
    ws = self.generator.apply(variables, *args, method="ws", **g_options)
    synthesize = lambda ws: self.generator.apply(variables, ws, method="synthesize", rngs=rngs)
    images, vjp = jax.vjp(synthesize, ws)
    y = jax.random.normal(jax.random.fold_in(key, 1), images.shape, jnp.float32)
    y = y / math.sqrt(images.shape[1] * images.shape[2])
    (grads,) = vjp(y.astype(images.dtype))
    lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=2), axis=1))
    mean = stats["pl_mean"] + options.decay * (jnp.mean(lengths) - stats["pl_mean"])
    mean = jax.lax.stop_gradient(mean)
    return jnp.mean(jnp.square(lengths - mean)), mean

  def _d(self, params: Any, stats: Any, x: jax.Array, labels: Optional[jax.Array]):
    """(float32 logits, aux class logits or None, new stats) of D in train mode, computed
    in the compute dtype."""
    if labels is not None and self.ac_weight:
      (logits, aux), stats = apply_in_train_mode(self.discriminator, params, stats, x, labels,
                                                 self.compute_dtype, return_aux=True)
      return logits, aux, stats
    logits, stats = apply_in_train_mode(self.discriminator, params, stats, x, labels,
                                        self.compute_dtype)
    return logits, None, stats

  def _d_on_real_and_fake(self, params: Any, stats: Any, real: jax.Array, fake: jax.Array,
                          labels: Optional[jax.Array]):
    """(real logits, real aux, fake logits, fake aux, new stats) of D's loss in a D update.

    d_passes='separate': D on the reals, then on the fakes with the statistics the real call
    left. 'fused': one call on both batches stacked (a vmap over the two halves, which XLA
    computes as one call on 2 * batch), with batch statistics (BatchNorm, minibatch
    standard deviation) per half as in two calls; the state both halves update from the
    same `stats` is their mean (BatchNorm's running averages advance once, by the mean of
    the two batches' statistics; a spectral norm's power iteration advances once, not
    twice). Logits and gradients are the separate calls' to float rounding, except that
    with spectral norm the fake half sees the sigma of the not-yet-advanced power iteration.
    One device only: over a data-parallel mesh XLA gathers the stacked halves onto every
    device (train.check_d_passes refuses it there).
    """
    if self.d_passes == "fused":
      one = lambda x: self._d(params, stats, x, labels)
      logits, aux, halves = jax.vmap(one)(jnp.stack([real, fake]))
      first, second = (jax.tree.map(lambda a, i=i: a[i], aux) for i in (0, 1))
      return logits[0], first, logits[1], second, jax.tree.map(_mean_of_halves, halves)
    real_logits, real_aux, stats = self._d(params, stats, real, labels)
    fake_logits, fake_aux, stats = self._d(params, stats, fake, labels)
    return real_logits, real_aux, fake_logits, fake_aux, stats

  def _augmented(self, key: jax.Array, x: jax.Array, which: int,
                 p: Optional[jax.Array] = None) -> jax.Array:
    """x as D sees it in the update with `key`: augmented from the stream's draw `which`
    (0 reals, 1 fakes) when augmentation is on (with probability `p`, ADA's or the
    annealed one, when given), else x itself."""
    if self.augment is None:
      return x
    key = jax.random.fold_in(jax.random.fold_in(key, AUGMENT_STREAM), which)
    return self.augment(key, x) if p is None else self.augment(key, x, p)

  def _augment_p(self, state: TrainState) -> Optional[jax.Array]:
    """The iteration's augmentation probability where it moves: ADA's, or the annealed one
    (None where `augment` applies its own fixed probability)."""
    if self.ada is not None:
      return state.d_stats[ADA_P]
    return None if self.augment_p is None else self.augment_p(state.step)

  def _penalty_terms(self, state: TrainState, d_params: Any, real: jax.Array,
                     fake: jax.Array, key: jax.Array,
                     labels: Optional[jax.Array] = None,
                     augment_key: Optional[jax.Array] = None) -> Dict[str, jax.Array]:
    """{name_penalty: value} of every configured penalty (0 on its off-iterations); D sees
    every penalty's inputs with `labels` (conditional runs), and first augments them as
    the update's reals when given its `augment_key` (penalty_grad='through')."""
    def d_fn(x):
      if augment_key is not None:
        x = self._augmented(augment_key, x, 0, self._augment_p(state))
      return self._d(d_params, state.d_stats, x, labels)[0]

    values = {}
    for i, penalty in enumerate(self.penalties):
      penalty_key = jax.random.fold_in(key, 1 + i)
      compute = lambda p=penalty, k=penalty_key: p.fn(d_fn, real, fake, k) * p.every
      if penalty.every > 1:
        value = branching.cond_or_select(state.step % penalty.every == 0, compute,
                                         lambda: jnp.zeros((), jnp.float32), self.lazy_branching)
      else:
        value = compute()
      values[f"{penalty.name}_penalty"] = value
    return values

  def d_update(self, state: TrainState, real: jax.Array, key: jax.Array,
               labels: Optional[jax.Array] = None) -> Tuple[TrainState, Metrics]:
    """One discriminator update on float `real` (images in [-1, 1]) and fresh fakes; G is untouched.

    z comes from fold_in(key, 0), penalty i's randomness from fold_in(key, 1 + i), the
    augmentation (if any) from fold_in(key, AUGMENT_STREAM); D's loss and the penalties
    see the augmented real and fake batches. With `labels` (batch, heads) the reals carry
    them and the fakes are generated from them (see the module docstring). With
    microbatches > 1 each micro-batch draws from its own key instead of `key`, z excepted.
    """
    z = self.sample_latent(jax.random.fold_in(key, 0), (real.shape[0], self.latent_dim))
    p = self._augment_p(state)

    def loss(d_params, d_stats, batch, key):
      real, z, labels = batch
      fake, _ = self._g(state.g_params, state.g_stats, z, labels, key)
      fake = jax.lax.stop_gradient(fake)
      raw_real, raw_fake = real, fake
      real, fake = self._augmented(key, real, 0, p), self._augmented(key, fake, 1, p)
      if self.penalty_grad == "through" and self.augment is not None:
        penalty_inputs = dict(real=raw_real, fake=raw_fake, augment_key=key)
      else:
        penalty_inputs = dict(real=real, fake=fake)
      real_logits, real_aux, fake_logits, fake_aux, stats = self._d_on_real_and_fake(
          d_params, d_stats, real, fake, labels)
      loss_options = {} if self.equilibrium is None else {"k": state.d_stats[BEGAN_K]}
      d_loss = self.loss_fn(real_logits, fake_logits, **loss_options).d_loss
      extra = {}
      if real_aux is not None:
        extra["d_ac_loss"] = (class_cross_entropy(real_aux, labels)
                              + class_cross_entropy(fake_aux, labels))
        extra["d_ac_accuracy"] = jnp.mean(jnp.stack(
            [jnp.argmax(real_aux[str(h)], -1) == labels[:, h]
             for h in range(labels.shape[1])]).astype(jnp.float32))
      penalties = self._penalty_terms(state, d_params, key=key, labels=labels,
                                      **penalty_inputs)
      total = d_loss + sum(p.weight_at(state.step) * penalties[f"{p.name}_penalty"]
                           for p in self.penalties)
      if real_aux is not None:
        total = total + self.ac_weight * extra["d_ac_loss"]
      if self.ada is not None:
        extra["ada_r"] = jnp.mean(jnp.sign(real_logits))
      scalars = {"d_loss": d_loss, "d_real": jnp.mean(real_logits),
                 "d_fake": jnp.mean(fake_logits), **penalties, **extra}
      return total, (stats, (real_logits, fake_logits), scalars)

    grads, stats, (real_logits, fake_logits), metrics = self._accumulate(
        loss, state.d_params, state.d_stats, (real, z, labels), key)
    updates, opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params)
    if self.equilibrium is not None:
      stats, equilibrium_metrics = self._balance_k(state.d_stats[BEGAN_K], stats,
                                                   real_logits, fake_logits)
      metrics = {**metrics, **equilibrium_metrics}
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_stats=stats, d_opt_state=opt_state)
    return state, {**metrics, "d_grad_norm": optax.tree.norm(grads)}

  def _balance_k(self, k: jax.Array, stats: Any, real_logits: jax.Array,
                 fake_logits: jax.Array) -> Tuple[Any, Metrics]:
    """D's statistics with BEGAN's k moved after a D update whose loss saw these logits
    (minus reconstruction errors), and the metrics began_k (the k used) and
    began_convergence (module docstring)."""
    real_error, fake_error = -jnp.mean(real_logits), -jnp.mean(fake_logits)
    balance = self.equilibrium.gamma * real_error - fake_error
    new_k = jnp.clip(k + self.equilibrium.lambda_k * balance, 0.0, 1.0).astype(k.dtype)
    return {**stats, BEGAN_K: new_k}, {"began_k": k,
                                       "began_convergence": real_error + jnp.abs(balance)}

  def g_update(self, state: TrainState, real: jax.Array, key: jax.Array,
               labels: Optional[jax.Array] = None) -> Tuple[TrainState, Metrics]:
    """One generator update (and its EMA) against the current D; D is untouched.

    `real` is passed for losses whose G term looks at D(real) (relativistic
    ones); for the others XLA removes that forward pass as dead code. With
    `labels`, G generates from them and D judges reals and fakes with them.
    """
    z = self.sample_latent(key, (real.shape[0], self.latent_dim))
    p = self._augment_p(state)

    def loss(g_params, g_stats, batch, key):
      real, z, labels = batch
      real_logits, _, _ = self._d(state.d_params, state.d_stats,
                                  self._augmented(key, real, 0, p), labels)
      real_logits = jax.lax.stop_gradient(real_logits)
      fake, new_stats = self._g(g_params, g_stats, z, labels, key)
      fake_logits, fake_aux, _ = self._d(state.d_params, state.d_stats,
                                         self._augmented(key, fake, 1, p), labels)
      g_loss = self.loss_fn(real_logits, fake_logits).g_loss
      total, extra = g_loss, {}
      if fake_aux is not None:
        extra["g_ac_loss"] = class_cross_entropy(fake_aux, labels)
        total = total + self.ac_weight * extra["g_ac_loss"]
      if self.path_length is not None:
        options = self.path_length
        compute = lambda: self._path_length_penalty(g_params, g_stats, z.shape[0], key, labels)
        if options.every > 1:
          penalty, mean = branching.cond_or_select(
              state.step % options.every == 0, compute,
              lambda: (jnp.zeros((), jnp.float32), g_stats["pl_mean"]), self.lazy_branching)
        else:
          penalty, mean = compute()
        new_stats = {**new_stats, "pl_mean": mean}
        extra["path_length_penalty"] = penalty  # 0 on the iterations without it
        extra["path_length_mean"] = mean
        total = total + options.weight * options.every * penalty
      return total, (new_stats, (), {"g_loss": g_loss, **extra})

    grads, g_stats, _, metrics = self._accumulate(loss, state.g_params, state.g_stats,
                                                  (real, z, labels), key)
    updates, opt_state = self.g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    decay = ema_decay_at(state.step, self.ema_decay, self.ema_rampup)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                       state.ema_params, g_params)
    state = state.replace(g_params=g_params, g_stats=g_stats,
                          g_opt_state=opt_state, ema_params=ema)
    return state, {**metrics, "g_grad_norm": optax.tree.norm(grads)}

  def __call__(self, state: TrainState, batch: Any) -> Tuple[TrainState, Metrics]:
    """One iteration on a data batch (d_steps, batch_size, *example_shape): uint8 images
    or float points (see batch_to_float), or a LabeledBatch of images and int32 labels
    (d_steps, batch_size, heads).

    Discriminator metrics are averaged over the D updates of the iteration.
    """
    images, labels = split_batch(batch)
    real = batch_to_float(images)
    d_steps = real.shape[0]
    label = lambda i: None if labels is None else labels[i]
    key = jax.random.fold_in(state.key, state.step)
    growth_metrics = {}
    if self.growth is not None:
      state, growth_metrics = self._grow(state)
    # d_loop='unroll' (default): a Python loop, unrolled at trace time; XLA's CPU backend
    # runs the convolutions inside a scan ~10x slower. 'scan' compiles one D update
    # whatever d_steps is (shorter compiles); the same updates, to float rounding.
    check_choice("d_loop", self.d_loop, D_LOOPS)
    check_choice("d_passes", self.d_passes, D_PASSES)
    check_choice("penalty_grad", self.penalty_grad, PENALTY_GRADS)
    check_microbatches(self.microbatches, real.shape[1])
    if self.d_loop == "scan":
      def one_update(state, i):
        return self.d_update(state, real[i], jax.random.fold_in(key, i), label(i))
      state, stacked = jax.lax.scan(one_update, state, jnp.arange(d_steps))
      d_metrics = jax.tree.map(lambda m: jnp.mean(m, axis=0), stacked)
    else:
      d_metrics = []
      for i in range(d_steps):
        state, metrics = self.d_update(state, real[i], jax.random.fold_in(key, i), label(i))
        d_metrics.append(metrics)
      d_metrics = jax.tree.map(lambda *m: jnp.mean(jnp.stack(m)), *d_metrics)
    state, g_metrics = self.g_update(state, real[-1], jax.random.fold_in(key, d_steps),
                                     label(d_steps - 1))
    if self.ada is not None:
      state, ada_metrics = self._adapt_p(state, d_metrics.pop("ada_r"),
                                         real.shape[0] * real.shape[1])
      g_metrics = {**g_metrics, **ada_metrics}
    return state.replace(step=state.step + 1), {**d_metrics, **g_metrics, **growth_metrics}

  def _grow(self, state: TrainState) -> Tuple[TrainState, Metrics]:
    """The state with both networks' growth level set for this iteration, and the metric
    growth_level (module docstring)."""
    level = growth_level(state.step, self.growth)
    def at_level(stats):
      return {**stats, GROWTH_LEVEL: level.astype(stats[GROWTH_LEVEL].dtype)}
    return (state.replace(g_stats=at_level(state.g_stats), d_stats=at_level(state.d_stats)),
            {"growth_level": level})

  def _adapt_p(self, state: TrainState, r: jax.Array, images: int) -> Tuple[TrainState, Metrics]:
    """The state with ADA's p moved towards r == target after an iteration in which D saw
    `images` real images with mean sign r of its logits, and the metrics augment_p (the p
    the iteration used) and ada_r (module docstring)."""
    p = state.d_stats[ADA_P]
    step = images / (self.ada.kimg * 1000.0)
    new_p = jnp.clip(p + jnp.sign(r - self.ada.target) * step, 0.0, 1.0).astype(p.dtype)
    state = state.replace(d_stats={**state.d_stats, ADA_P: new_p})
    return state, {"augment_p": p, "ada_r": r}
