"""Generative Latent Optimisation (GLO; Bojanowski et al., 2018) on the toy lab's data: the
lectures' "supervised latent assignment", a generator trained with neither a
discriminator nor an encoder.

Every training example x_i owns a code z_i, a free parameter learned together with the
generator to minimise the batch mean of |G(z_i) - x_i|^2; after each update the codes
are projected back onto the unit sphere (the paper's constraint). GLO needs fixed
examples to attach codes to: the training set is `num_points` points drawn once from
the mixture (toy.toy_batch at step 0), and each step takes config.train.batch_size of
them at random. To sample, a Gaussian (mean and full covariance) is fitted to the
learned codes, as the paper does, and G decodes its draws: z = mean + chol(cov) e, with
e the fixed N(0, I) latents the GAN's samples and mode metrics use.

G is the toy generator (models/mlp.py, the VAE baseline's decoder: vae.make_models);
G and the codes train with Adam at config.optim's G settings.
"""

from typing import Any, Dict, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import data as data_lib
from gan_jax import lab, sampling, vae
from gan_jax.data import toy


class GLOState(NamedTuple):
  """The generator's parameters, the codes (num_points, latent_dim), their optimizer state."""
  params: Dict[str, Any]  # {'decoder': ..., 'codes': ...}
  opt_state: Any


def on_sphere(codes: jax.Array) -> jax.Array:
  """Each row of `codes` scaled to unit L2 norm."""
  return codes / jnp.maximum(jnp.linalg.norm(codes, axis=-1, keepdims=True), 1e-12)


def train_seeds(config, seeds: Sequence[int], num_steps: int = -1,
                num_points: int = 2048) -> Tuple[GLOState, Dict[str, jax.Array]]:
  """(final states, per-step metrics {'reconstruction'}: the batch's RMS error per
  coordinate) of GLO on config's toy data for every seed (leading axis), scanned over
  `num_steps` (default config.train.num_steps) steps (module docstring)."""
  if num_points < config.train.batch_size:
    raise ValueError(f"num_points ({num_points}) must be at least the batch size "
                     f"({config.train.batch_size})")
  mixture = data_lib.toy_mixture(config.data)
  _, decoder = vae.make_models(config)
  num_steps = config.train.num_steps if num_steps < 0 else num_steps
  tx = optax.adam(config.optim.g_lr, *config.optim.g_betas)
  latent_dim = config.model.latent_dim

  def run(seed):
    k_dec, k_codes, k_batches = jax.random.split(jax.random.PRNGKey(seed), 3)
    points = toy.toy_batch(mixture, seed, jnp.int32(0), 1, num_points)[0]
    params = {"decoder": decoder.init(k_dec, jnp.zeros((1, latent_dim)), train=False)["params"],
              "codes": on_sphere(jax.random.normal(k_codes, (num_points, latent_dim)))}
    state = GLOState(params, tx.init(params))

    def body(state, step):
      rows = jax.random.choice(jax.random.fold_in(k_batches, step), num_points,
                               (config.train.batch_size,), replace=False)
      x = points[rows]

      def objective(params):
        out = decoder.apply({"params": params["decoder"]}, params["codes"][rows], train=True)
        return jnp.mean(jnp.sum(jnp.square(out - x), axis=-1))

      loss, grads = jax.value_and_grad(objective)(state.params)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = optax.apply_updates(state.params, updates)
      params = {**params, "codes": on_sphere(params["codes"])}
      return GLOState(params, opt_state), {"reconstruction": jnp.sqrt(loss / x.shape[-1])}

    return jax.lax.scan(body, state, jnp.arange(num_steps))

  return lab.jit_long_run(jax.vmap(run), num_steps)(jnp.asarray(seeds, jnp.uint32))


def code_gaussian(codes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(mean, Cholesky factor of the covariance) of the Gaussian fitted to codes (n, dim)."""
  codes = np.asarray(codes, np.float64)
  cov = np.cov(codes, rowvar=False) + 1e-6 * np.eye(codes.shape[1])
  return codes.mean(axis=0), np.linalg.cholesky(cov)


def decode_fitted_gaussian(config, decoder, decoder_params: Any, codes: np.ndarray,
                           num: int) -> np.ndarray:
  """(seeds, num, *example_shape): each seed's decoder (params with a leading seed axis) on
  `num` draws from the Gaussian fitted to that seed's codes (seeds, n, latent_dim), made
  from the fixed latents (config.seed's)."""
  e = np.asarray(sampling.fixed_latents(config.seed, num, config.model.latent_dim, "gaussian"))
  z = np.stack([mean + e @ chol.T for mean, chol in map(code_gaussian, np.asarray(codes))])
  return np.asarray(jax.jit(jax.vmap(lambda p, z: decoder.apply({"params": p}, z, train=False)))(
      decoder_params, jnp.asarray(z, jnp.float32)))


def generate_seeds(config, states: GLOState, num: int = 2500) -> np.ndarray:
  """(seeds, num, *example_shape) samples of each seed: G on draws from the Gaussian fitted
  to that seed's codes, made from the fixed latents (config.seed's)."""
  _, decoder = vae.make_models(config)
  return decode_fitted_gaussian(config, decoder, states.params["decoder"],
                                states.params["codes"], num)


def mode_metrics_seeds(config, states: GLOState, num: int = 2500,
                       within_stds: float = 3.0) -> Dict[str, np.ndarray]:
  """{'modes_covered', 'high_quality'} (toy.mode_metrics, a sample counting within
  `within_stds` of a mode) of each seed's GLO samples."""
  return lab.samples_mode_metrics(config, generate_seeds(config, states, num), within_stds)
