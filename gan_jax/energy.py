"""The discriminator alone as a generator, on the toy lab's data: the lectures' energy-based view.

The lectures: D by itself can generate, x = argmax_x D(x), if it is trained
against negatives mined by that same search, iteratively; this is slow and
hard, and a GAN replaces the search with a learned generator. This module makes
the claim measurable on the toy mixtures with the GAN's own pieces (the toy
discriminator of models/mlp.py, the batches of toy.toy_batch, config.optim's D
settings, toy.mode_metrics on the result).

Search (`ascend`): from starting points x_0 ~ U[-extent, extent]^dim, `steps`
steps of noisy gradient ascent on D's logit (short-run Langevin dynamics):
  x_{k+1} = x_k + step_size * grad_x D(x_k) + noise * e_k,  e_k ~ N(0, I).
Training: each iteration draws a batch of reals and as many fresh negatives by
the search against the current D (no gradient through the search), and takes
one optimizer step on D's non-saturating loss softplus(-D(real)) +
softplus(D(negative)) plus `logit_l2` * (D(real)^2 + D(negative)^2), the
regulariser energy-based models use to keep the logits bounded. Samples: the
same search against the trained D, from fixed starting points.
"""

from typing import Any, Dict, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import data as data_lib
from gan_jax import lab
from gan_jax.data import toy
from gan_jax.models import mlp

_START_STREAM = 0x656e6779  # 'engy': the search's starting points and noise


class Search(NamedTuple):
  """The search for argmax_x D(x) (module docstring)."""
  steps: int = 40
  step_size: float = 0.01
  noise: float = 0.005
  extent: float = 3.0  # starting points uniform over [-extent, extent]^dim


class EnergyState(NamedTuple):
  """D's parameters and its optimizer's state."""
  params: Any
  opt_state: Any


def make_discriminator(config) -> mlp.Discriminator:
  """The toy config's discriminator (models/mlp.py), without spectral normalisation."""
  if config.model.name != "mlp" or data_lib.toy_mixture(config.data) is None:
    raise ValueError("the energy-based generator is for the toy lab: model.name=mlp on toy:NAME "
                     f"data, got {config.model.name!r} on {config.data.source!r}")
  return mlp.Discriminator(config.model.d_width, config.model.d_depth)


def ascend(d_fn, x: jax.Array, key: jax.Array, search: Search) -> jax.Array:
  """x after search.steps steps of noisy gradient ascent on d_fn (module docstring); no
  gradient flows back through the search."""
  grad = jax.grad(lambda x: jnp.sum(d_fn(x)))

  def step(x, k):
    x = x + search.step_size * grad(x) + search.noise * jax.random.normal(k, x.shape)
    return x, None

  x, _ = jax.lax.scan(step, x, jax.random.split(key, search.steps))
  return jax.lax.stop_gradient(x)


def starting_points(key: jax.Array, num: int, dim: int, search: Search) -> jax.Array:
  """`num` starting points of the search, uniform over [-extent, extent]^dim."""
  return jax.random.uniform(key, (num, dim), jnp.float32, -search.extent, search.extent)


def train_seeds(config, seeds: Sequence[int], num_steps: int = -1, search: Search = Search(),
                logit_l2: float = 0.1) -> Tuple[EnergyState, Dict[str, jax.Array]]:
  """(final states, per-step metrics {'d_loss', 'd_real', 'd_negative'}) of D trained alone
  on config's toy data against searched negatives (module docstring), for every seed at
  once (vmapped; leading seed axis), `num_steps` (default config.train.num_steps) steps of
  config.train.batch_size reals."""
  if search.steps < 1 or search.step_size <= 0 or search.noise < 0 or search.extent <= 0:
    raise ValueError(f"the search needs steps >= 1, step_size > 0, noise >= 0 and extent > 0, "
                     f"got {search}")
  mixture = data_lib.toy_mixture(config.data)
  discriminator = make_discriminator(config)
  num_steps = config.train.num_steps if num_steps < 0 else num_steps
  tx = optax.adam(config.optim.d_lr, *config.optim.d_betas)
  batch = config.train.batch_size

  def run(seed):
    k_init, k_run = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), _START_STREAM))
    params = discriminator.init(k_init, jnp.zeros((1, mixture.dim)), train=False)["params"]
    state = EnergyState(params, tx.init(params))

    def body(state, step):
      real = toy.toy_batch(mixture, seed, step, 1, batch)[0]
      k_start, k_noise = jax.random.split(jax.random.fold_in(k_run, step))
      d_fn = lambda x: discriminator.apply({"params": state.params}, x, train=False)
      negative = ascend(d_fn, starting_points(k_start, batch, mixture.dim, search), k_noise,
                        search)

      def loss(params):
        d = lambda x: discriminator.apply({"params": params}, x, train=True)
        d_real, d_negative = d(real), d(negative)
        value = (jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_negative))
                 + logit_l2 * jnp.mean(jnp.square(d_real) + jnp.square(d_negative)))
        return value, {"d_loss": value, "d_real": jnp.mean(d_real),
                       "d_negative": jnp.mean(d_negative)}

      grads, metrics = jax.grad(loss, has_aux=True)(state.params)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      return EnergyState(optax.apply_updates(state.params, updates), opt_state), metrics

    return jax.lax.scan(body, state, jnp.arange(num_steps))

  return lab.jit_long_run(jax.vmap(run), num_steps)(jnp.asarray(seeds, jnp.uint32))


def fixed_starting_points(config, num: int,
                          search: Search = Search()) -> Tuple[jax.Array, jax.Array]:
  """(starting points (num, dim), noise key) of the sampling search, fixed by config.seed."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), _START_STREAM)
  k_start, k_noise = jax.random.split(key)
  dim = data_lib.toy_mixture(config.data).dim
  return starting_points(k_start, num, dim, search), k_noise


def generate_seeds(config, states: EnergyState, num: int = 2500,
                   search: Search = Search()) -> np.ndarray:
  """(seeds, num, dim): each seed's D searched from `num` starting points fixed by
  config.seed (the same for every seed and run)."""
  discriminator = make_discriminator(config)
  x0, k_noise = fixed_starting_points(config, num, search)

  def one(params):
    d_fn = lambda x: discriminator.apply({"params": params}, x, train=False)
    return ascend(d_fn, x0, k_noise, search)
  return np.asarray(jax.jit(jax.vmap(one))(states.params))


def mode_metrics_seeds(config, states: EnergyState, num: int = 2500, search: Search = Search(),
                       within_stds: float = 3.0) -> Dict[str, np.ndarray]:
  """{'modes_covered', 'high_quality'} (toy.mode_metrics) of each seed's searched samples."""
  return lab.samples_mode_metrics(config, generate_seeds(config, states, num, search),
                                  within_stds)
