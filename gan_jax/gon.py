"""Gradient Origin Networks (GON; Bond-Taylor & Willcocks, 2021) on the toy lab's data: the
other "supervised latent assignment" of the lectures, with neither a discriminator
nor an encoder network and, unlike GLO, no stored codes.

A data point's code is the negative gradient, at the origin, of its reconstruction
error: z(x) = -grad_z0 |G(z0) - x|^2 at z0 = 0, one step of gradient descent from 0.
G then trains to minimise |G(z(x)) - x|^2, differentiating through that inner
gradient (second order), so the decoder learns to be its own encoder. Each step draws a
fresh batch from the mixture (toy.toy_batch at that step). To sample, as GLO does, a
Gaussian is fitted to the codes of `num_points` data points and G decodes its draws
(glo.code_gaussian; the fixed N(0, I) latents of the GAN's samples).

The code is 2 J(0)^T (x - G(0)) with J(0) G's Jacobian at the origin: linear in x. With
ReLU layers and zero-initialised biases every pre-activation at z0 = 0 is exactly 0,
where JAX's relu has derivative 0, so J(0) = 0: every code is 0 and stays 0 (no
gradient reaches the weights through it). GON therefore uses ELU (derivative 1 at 0);
`activation='relu'` reproduces the failure (tests/test_gon.py).
"""

from typing import Any, Dict, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import data as data_lib
from gan_jax import glo, lab
from gan_jax.data import toy
from gan_jax.models import mlp


class GONState(NamedTuple):
  """The generator's parameters and their optimizer state."""
  params: Any
  opt_state: Any


def make_decoder(config, activation: str = "elu") -> mlp.Generator:
  """The toy generator of `config` (models/mlp.py) with `activation` hidden layers."""
  if config.model.name != "mlp" or data_lib.toy_mixture(config.data) is None:
    raise ValueError("GON is for the toy lab: model.name=mlp on toy:NAME data, got "
                     f"{config.model.name!r} on {config.data.source!r}")
  shape = data_lib.example_spec(config.data)[0]
  return mlp.Generator(shape, config.model.g_width, config.model.g_depth, activation=activation)


def codes(decoder: mlp.Generator, params: Any, x: jax.Array, latent_dim: int) -> jax.Array:
  """z(x) = -grad_z0 sum_i |G(z0_i) - x_i|^2 at z0 = 0: (batch, latent_dim), each row the
  gradient of that point's own squared error (differentiable in params)."""
  def error(z0):
    return jnp.sum(jnp.square(decoder.apply({"params": params}, z0, train=True) - x))
  return -jax.grad(error)(jnp.zeros((x.shape[0], latent_dim), x.dtype))


def train_seeds(config, seeds: Sequence[int], num_steps: int = -1, activation: str = "elu"
                ) -> Tuple[GONState, Dict[str, jax.Array]]:
  """(final states, per-step metrics {'reconstruction': the batch's RMS error per
  coordinate, 'code_norm': the mean code length}) of GON on config's toy data for every
  seed (leading axis), `num_steps` (default config.train.num_steps) Adam steps at
  config.optim's G settings."""
  mixture = data_lib.toy_mixture(config.data)
  decoder = make_decoder(config, activation)
  num_steps = config.train.num_steps if num_steps < 0 else num_steps
  tx = optax.adam(config.optim.g_lr, *config.optim.g_betas)
  latent_dim, batch = config.model.latent_dim, config.train.batch_size

  def run(seed):
    params = decoder.init(jax.random.PRNGKey(seed), jnp.zeros((1, latent_dim)),
                          train=False)["params"]
    state = GONState(params, tx.init(params))

    def body(state, step):
      x = toy.toy_batch(mixture, seed, step, 1, batch)[0]

      def objective(params):
        z = codes(decoder, params, x, latent_dim)
        out = decoder.apply({"params": params}, z, train=True)
        return jnp.mean(jnp.sum(jnp.square(out - x), axis=-1)), z

      (loss, z), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      metrics = {"reconstruction": jnp.sqrt(loss / x.shape[-1]),
                 "code_norm": jnp.mean(jnp.linalg.norm(z, axis=-1))}
      return GONState(params, opt_state), metrics

    return jax.lax.scan(body, state, jnp.arange(1, num_steps + 1))

  return lab.jit_long_run(jax.vmap(run), num_steps)(jnp.asarray(seeds, jnp.uint32))


def generate_seeds(config, states: GONState, num: int = 2500, num_points: int = 2048,
                   activation: str = "elu") -> np.ndarray:
  """(seeds, num, *example_shape) samples of each seed: G on draws from the Gaussian fitted to
  the codes of `num_points` fresh data points, made from the fixed latents (config.seed's)."""
  mixture = data_lib.toy_mixture(config.data)
  decoder = make_decoder(config, activation)
  latent_dim = config.model.latent_dim
  # Step 0 of the data stream: the training steps drew 1..num_steps.
  points = toy.toy_batch(mixture, config.seed, jnp.int32(0), 1, num_points)[0]
  all_codes = jax.jit(jax.vmap(lambda p: codes(decoder, p, points, latent_dim)))(states.params)
  return glo.decode_fitted_gaussian(config, decoder, states.params, all_codes, num)


def mode_metrics_seeds(config, states: GONState, num: int = 2500, within_stds: float = 3.0,
                       activation: str = "elu") -> Dict[str, np.ndarray]:
  """{'modes_covered', 'high_quality'} (toy.mode_metrics, a sample counting within
  `within_stds` of a mode) of each seed's GON samples."""
  return lab.samples_mode_metrics(
      config, generate_seeds(config, states, num, activation=activation), within_stds)
