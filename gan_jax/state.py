"""The training state: everything a run needs to continue exactly.

One pytree holds both networks' parameters and BatchNorm statistics, both
optimizer states, the generator's exponential moving average (EMA), the step
counter and the run's PRNG key. Checkpoints save and restore it whole.
"""

from typing import Any, Callable, Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Full GAN training state (a pytree; every field is an array or a pytree of arrays)."""
  step: jax.Array        # int32 scalar: completed iterations (d_steps D updates + 1 G update)
  key: jax.Array         # uint32[2]: the run's key; step randomness is fold_in(key, step)
  g_params: PyTree
  g_stats: PyTree        # generator BatchNorm running statistics ({} if none)
  g_opt_state: PyTree
  ema_params: PyTree     # EMA of g_params, used for samples
  d_params: PyTree
  d_stats: PyTree        # discriminator BatchNorm running statistics ({} if none), and
                         # ADA's augmentation probability under 'ada_p' when adaptive
  d_opt_state: PyTree


def init_variables(module: nn.Module, key: jax.Array, example: jax.Array,
                   labels: Optional[jax.Array] = None) -> Tuple[PyTree, PyTree]:
  """(params, batch_stats) of `module` initialised on `example` (and `labels`, for a
  conditional module) in eval mode."""
  if labels is None:
    variables = module.init(key, example, train=False)
  else:
    variables = module.init(key, example, labels, train=False)
  return variables["params"], variables.get("batch_stats", {})


def create_state(key: jax.Array, generator: nn.Module, discriminator: nn.Module,
                 g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                 latent_dim: int, image_shape: Tuple[int, int, int],
                 label_heads: int = 0) -> TrainState:
  """A fresh TrainState; deterministic in `key` (uint32[2]). `label_heads` > 0: the models
  are class-conditional with that many label heads."""
  k_g, k_d, k_run = jax.random.split(key, 3)
  labels = jnp.zeros((1, label_heads), jnp.int32) if label_heads else None
  g_params, g_stats = init_variables(
      generator, k_g, jnp.zeros((1, latent_dim), jnp.float32), labels)
  d_params, d_stats = init_variables(
      discriminator, k_d, jnp.zeros((1, *image_shape), jnp.float32), labels)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      key=k_run,
      g_params=g_params,
      g_stats=g_stats,
      g_opt_state=g_tx.init(g_params),
      ema_params=jax.tree.map(jnp.copy, g_params),
      d_params=d_params,
      d_stats=d_stats,
      d_opt_state=d_tx.init(d_params),
  )


def abstract_state(create_fn: Callable[[], TrainState]) -> TrainState:
  """The state's shapes and dtypes (jax.ShapeDtypeStruct leaves), computing nothing."""
  return jax.eval_shape(create_fn)


def count_params(params: PyTree) -> int:
  """Number of scalars in a parameter pytree."""
  return sum(int(x.size) for x in jax.tree.leaves(params))
