"""GLO (gan_jax/glo.py): its pieces by hand, and the lectures' claim on the toy ring."""

import jax.numpy as jnp
import numpy as np
import pytest

from configs import toy_ring
from gan_jax import glo, lab


def test_codes_are_projected_onto_the_unit_sphere():
  codes = glo.on_sphere(jnp.array([[3.0, 4.0], [0.0, -0.5], [0.0, 0.0]]))
  np.testing.assert_allclose(codes, [[0.6, 0.8], [0.0, -1.0], [0.0, 0.0]], atol=1e-7)


def test_the_code_gaussian_has_the_codes_mean_and_covariance():
  rng = np.random.default_rng(0)
  true_chol = np.array([[1.0, 0.0], [0.5, 0.3]])
  codes = rng.normal(size=(20000, 2)) @ true_chol.T + np.array([2.0, -1.0])
  mean, chol = glo.code_gaussian(codes)
  np.testing.assert_allclose(mean, [2.0, -1.0], atol=0.02)
  np.testing.assert_allclose(chol @ chol.T, true_chol @ true_chol.T, atol=0.02)


def test_a_batch_smaller_than_the_training_set_is_required():
  with pytest.raises(ValueError, match="num_points .100. must be at least the batch size .256."):
    glo.train_seeds(toy_ring.get_config(), [0], num_steps=1, num_points=100)


def test_glo_reconstructs_its_points_but_samples_between_the_modes():
  """GLO fits its training points (RMS error per coordinate well under the ring's radius
  of 2), while G on draws from the Gaussian fitted to its codes puts most samples farther
  than 10 std from every mode: the codes cluster per mode on the sphere, and the Gaussian
  fills the space between the clusters (benchmarks/vae_baseline.md: 10 seeds)."""
  config = toy_ring.get_config()
  config.optim.g_lr = 3e-3
  states, metrics = glo.train_seeds(config, [0], num_steps=2000, num_points=512)
  norms = np.linalg.norm(np.asarray(states.params["codes"]), axis=-1)
  np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
  reconstruction = np.asarray(metrics["reconstruction"])
  assert np.all(reconstruction[:, -50:].mean(axis=1) < 0.1)
  assert np.all(reconstruction[:, -50:].mean(axis=1) < reconstruction[:, :50].mean(axis=1) / 5)
  near = lab.samples_mode_metrics(config, glo.generate_seeds(config, states), within_stds=10.0)
  assert np.all(near["high_quality"] < 0.2), near  # > 80% of samples between the modes
