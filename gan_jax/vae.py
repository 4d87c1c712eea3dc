"""A variational auto-encoder on the toy lab's data: the baseline the lectures compare GANs with.

The lectures: a VAE's decoder is a generator trained without a discriminator;
its images are blurrier, it puts samples between the modes of a mixture, and
it is more stable across hyperparameters than a GAN. This module makes those
claims measurable on the toy mixtures, with the GAN's own pieces: the decoder
is the toy generator (models/mlp.py Generator, so samples come from the same
fixed latents and are scored by the same toy.mode_metrics), the encoder an MLP
of the discriminator's size, the batches the GAN's (toy.toy_batch, a function
of (seed, step)) and the optimizer config.optim's G settings.

Loss per sample (the negative ELBO, in nats up to a constant):
  |x - decoder(z)|^2 / (2 s^2) + KL(N(m, exp(2 l)) || N(0, I)),  z = m + exp(l) * e,
with (m, l) = encoder(x), e ~ N(0, I) and s = `likelihood_std`, the decoder's
fixed Gaussian noise. Samples are decoder(z), z ~ N(0, I), without that noise
(as VAEs are sampled for images).

The plain auto-encoder (`autoencoder=True`), the lectures' first alternative: the
code is the encoder's mean m itself (no noise e, no KL term), so the loss is the
reconstruction term alone; its decoder is sampled the same way, from z ~ N(0, I),
which nothing in its training makes its codes follow.
"""

from typing import Any, Dict, NamedTuple, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import data as data_lib
from gan_jax import lab, sampling
from gan_jax.data import toy
from gan_jax.models import mlp


class Encoder(nn.Module):
  """x (batch, *example_shape) -> (mean, log std) of q(z | x), each (batch, latent_dim)."""
  latent_dim: int
  width: int = 128
  depth: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    x = x.reshape(x.shape[0], -1)
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width)(x))
    out = nn.Dense(2 * self.latent_dim)(x)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


class VAEState(NamedTuple):
  """Encoder and decoder parameters and their optimizer's state."""
  params: Dict[str, Any]  # {'encoder': ..., 'decoder': ...}
  opt_state: Any


def make_models(config) -> Tuple[Encoder, mlp.Generator]:
  """(encoder, decoder) for a toy config: the decoder is its generator (models/mlp.py), the
  encoder as wide and deep as its discriminator."""
  if config.model.name != "mlp" or data_lib.toy_mixture(config.data) is None:
    raise ValueError("the VAE baseline is for the toy lab: model.name=mlp on toy:NAME data, "
                     f"got {config.model.name!r} on {config.data.source!r}")
  shape = data_lib.example_spec(config.data)[0]
  return (Encoder(config.model.latent_dim, config.model.d_width, config.model.d_depth),
          mlp.Generator(shape, config.model.g_width, config.model.g_depth))


def negative_elbo(encoder: Encoder, decoder: mlp.Generator, params: Dict[str, Any],
                  x: jax.Array, key: jax.Array, likelihood_std: float,
                  autoencoder: bool = False) -> Dict[str, jax.Array]:
  """{'loss', 'reconstruction', 'kl'}: batch means of the per-sample negative ELBO and its
  two terms (module docstring), with one reparameterised z per sample from `key`; with
  `autoencoder`, the plain auto-encoder's (z = m, kl 0, loss = reconstruction)."""
  mean, log_std = encoder.apply({"params": params["encoder"]}, x)
  if autoencoder:
    z, kl = mean, jnp.zeros(x.shape[0])
  else:
    z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    kl = 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(2.0 * log_std) - 1.0 - 2.0 * log_std, axis=1)
  recon = decoder.apply({"params": params["decoder"]}, z, train=True)
  squared = jnp.sum(jnp.square((recon - x).reshape(x.shape[0], -1)), axis=1)
  reconstruction = squared / (2.0 * likelihood_std**2)
  return {"loss": jnp.mean(reconstruction + kl), "reconstruction": jnp.mean(reconstruction),
          "kl": jnp.mean(kl)}


def train_seeds(config, seeds: Sequence[int], num_steps: int = -1,
                likelihood_std: float = 0.1,
                autoencoder: bool = False) -> Tuple[VAEState, Dict[str, jax.Array]]:
  """(final states, per-step metrics {'loss', 'reconstruction', 'kl'}) of the VAE trained
  on config's toy data for every seed, vmapped over seeds (leading axis) and scanned over
  `num_steps` (default config.train.num_steps) steps of config.train.batch_size points:
  the batches of a GAN run with one D step per iteration (toy.toy_batch). Adam with the
  generator's learning rate and betas (config.optim). `autoencoder`: the plain
  auto-encoder instead (module docstring)."""
  if likelihood_std <= 0:
    raise ValueError(f"likelihood_std must be > 0, got {likelihood_std}")
  mixture = data_lib.toy_mixture(config.data)
  encoder, decoder = make_models(config)
  num_steps = config.train.num_steps if num_steps < 0 else num_steps
  tx = optax.adam(config.optim.g_lr, *config.optim.g_betas)
  shape = data_lib.example_spec(config.data)[0]

  def run(seed):
    k_enc, k_dec, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = {"encoder": encoder.init(k_enc, jnp.zeros((1, *shape)))["params"],
              "decoder": decoder.init(k_dec, jnp.zeros((1, config.model.latent_dim)),
                                      train=False)["params"]}
    state = VAEState(params, tx.init(params))

    def body(state, step):
      x = toy.toy_batch(mixture, seed, step, 1, config.train.batch_size)[0]

      def objective(params):
        terms = negative_elbo(encoder, decoder, params, x, jax.random.fold_in(k_run, step),
                              likelihood_std, autoencoder)
        return terms["loss"], terms

      (_, terms), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      return VAEState(optax.apply_updates(state.params, updates), opt_state), terms

    return jax.lax.scan(body, state, jnp.arange(num_steps))

  return lab.jit_long_run(jax.vmap(run), num_steps)(jnp.asarray(seeds, jnp.uint32))


def generate_seeds(config, states: VAEState, num: int = 2500) -> np.ndarray:
  """(seeds, num, *example_shape) decoder samples of each seed from the fixed latents the
  GAN's plots and mode metrics use (config.seed's)."""
  _, decoder = make_models(config)
  z = sampling.fixed_latents(config.seed, num, config.model.latent_dim, "gaussian")
  return np.asarray(jax.jit(jax.vmap(
      lambda p: decoder.apply({"params": p}, z, train=False)))(states.params["decoder"]))


def mode_metrics_seeds(config, states: VAEState, num: int = 2500,
                       within_stds: float = 3.0) -> Dict[str, np.ndarray]:
  """{'modes_covered', 'high_quality'} (toy.mode_metrics, a sample counting within
  `within_stds` of a mode) of each seed's VAE samples."""
  return lab.samples_mode_metrics(config, generate_seeds(config, states, num), within_stds)
