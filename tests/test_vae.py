"""The VAE baseline of the toy lab (gan_jax/vae.py): its loss by hand, and refusals. The
lectures' claim it measures is in tests/test_toy_lab.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcgan, toy_ring
from gan_jax import vae


def constant_params(config, mean, log_std):
  """VAE parameters whose encoder outputs (mean, log_std) for every input and whose decoder
  outputs 0 for every z (all kernels zero; the encoder's last bias holds the constants)."""
  encoder, decoder = vae.make_models(config)
  params = {"encoder": encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))["params"],
            "decoder": decoder.init(jax.random.PRNGKey(1), jnp.zeros((1, 16)),
                                    train=False)["params"]}
  params = jax.tree.map(jnp.zeros_like, params)
  last = f"Dense_{config.model.d_depth}"
  params["encoder"][last]["bias"] = jnp.concatenate(
      [jnp.full((16,), mean), jnp.full((16,), log_std)])
  return encoder, decoder, params


def test_negative_elbo_by_hand():
  """-ELBO = |x - 0|^2 / (2 s^2) + latent_dim * 1/2 (m^2 + e^(2l) - 1 - 2l) for an encoder
  giving (m, l) in every latent dimension and a decoder giving 0."""
  config = toy_ring.get_config()
  x = jnp.array([[1.0, 2.0], [0.0, -3.0]])
  encoder, decoder, params = constant_params(config, mean=1.0, log_std=math.log(2.0))
  terms = vae.negative_elbo(encoder, decoder, params, x, jax.random.PRNGKey(2), 0.5)
  reconstruction = np.mean([5.0, 9.0]) / (2 * 0.25)
  kl = 16 * 0.5 * (1.0 + 4.0 - 1.0 - 2 * math.log(2.0))
  np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-6)
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-6)
  np.testing.assert_allclose(terms["loss"], reconstruction + kl, rtol=1e-6)
  _, _, prior = constant_params(config, mean=0.0, log_std=0.0)  # q(z|x) = p(z): no KL
  assert float(vae.negative_elbo(encoder, decoder, prior, x, jax.random.PRNGKey(2), 0.5)["kl"]) == 0
  # The plain auto-encoder: the reconstruction term alone, the same whatever the key.
  plain = [vae.negative_elbo(encoder, decoder, params, x, jax.random.PRNGKey(k), 0.5,
                             autoencoder=True) for k in (2, 3)]
  assert float(plain[0]["kl"]) == 0.0 and plain[0] == plain[1]
  np.testing.assert_allclose(plain[0]["loss"], reconstruction, rtol=1e-6)


def test_the_autoencoder_decodes_its_own_codes():
  """The plain auto-encoder's decoder is fed the encoder's mean: its reconstruction of a
  point depends on the encoder (a VAE's, on e too)."""
  config = toy_ring.get_config()
  encoder, decoder = vae.make_models(config)
  x = jnp.array([[1.0, 2.0]])
  params = {"encoder": encoder.init(jax.random.PRNGKey(0), x)["params"],
            "decoder": decoder.init(jax.random.PRNGKey(1), jnp.zeros((1, 16)), train=False)["params"]}
  mean, _ = encoder.apply({"params": params["encoder"]}, x)
  recon = decoder.apply({"params": params["decoder"]}, mean, train=False)
  terms = vae.negative_elbo(encoder, decoder, params, x, jax.random.PRNGKey(2), 0.1,
                            autoencoder=True)
  np.testing.assert_allclose(terms["reconstruction"], np.sum((recon - x) ** 2) / 0.02, rtol=1e-5)


def test_training_lowers_the_loss_and_is_a_function_of_the_seed():
  config = toy_ring.get_config()
  states, metrics = vae.train_seeds(config, [0, 0, 1], num_steps=200)
  loss = np.asarray(metrics["loss"])
  assert loss.shape == (3, 200) and np.all(loss[:, -20:].mean(1) < loss[:, :20].mean(1))
  samples = vae.generate_seeds(config, states, num=100)
  assert samples.shape == (3, 100, 2)
  np.testing.assert_array_equal(samples[0], samples[1])
  assert not np.allclose(samples[0], samples[2])


def test_the_vae_baseline_is_for_toy_data_and_a_positive_noise():
  with pytest.raises(ValueError, match="the VAE baseline is for the toy lab"):
    vae.make_models(dcgan.get_config("smoke"))
  with pytest.raises(ValueError, match="likelihood_std must be > 0, got 0"):
    vae.train_seeds(toy_ring.get_config(), [0], num_steps=1, likelihood_std=0)
