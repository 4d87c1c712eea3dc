"""The energy-based view of the toy lab (gan_jax/energy.py): the search by hand, training
against searched negatives, refusals. The claim it measures is in benchmarks/energy_baseline.md
(its search lengths need minutes; the suite keeps to the mechanics)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dcgan, toy_ring
from gan_jax import energy


def test_the_search_is_noisy_gradient_ascent_on_d():
  """D(x) = -|x - c|^2: each step is x + step_size * 2 (c - x) + noise * e, so without
  noise x approaches c geometrically, by (1 - 2 step_size)^steps."""
  c = jnp.array([1.0, -2.0])
  d_fn = lambda x: -jnp.sum(jnp.square(x - c), axis=1)
  x0 = jnp.array([[3.0, 0.0], [0.0, 0.0]])
  search = energy.Search(steps=10, step_size=0.1, noise=0.0)
  x = energy.ascend(d_fn, x0, jax.random.PRNGKey(0), search)
  np.testing.assert_allclose(x, c + (x0 - c) * 0.8**10, rtol=1e-5)
  noisy = energy.ascend(d_fn, x0, jax.random.PRNGKey(0), search._replace(noise=0.1))
  again = energy.ascend(d_fn, x0, jax.random.PRNGKey(0), search._replace(noise=0.1))
  np.testing.assert_array_equal(noisy, again)  # the noise is the key's
  assert not np.allclose(noisy, x)
  grads = jax.grad(lambda x0: jnp.sum(energy.ascend(d_fn, x0, jax.random.PRNGKey(0), search)))(x0)
  np.testing.assert_array_equal(grads, 0.0)  # D's training sees the negatives as data


def test_d_trained_alone_pulls_its_search_to_the_data():
  """800 steps: D rates reals above its searched negatives, and the search from the fixed
  starting points ends at under half their mean distance to the ring (radius 2); measured
  0.21 against 0.73 on seeds 0-1 (seed 0 runs here)."""
  config = toy_ring.get_config()
  search = energy.Search(steps=10, step_size=0.05)
  states, metrics = energy.train_seeds(config, [0], num_steps=800, search=search)
  assert np.all(np.asarray(metrics["d_real"])[:, -50:].mean(1)
                > np.asarray(metrics["d_negative"])[:, -50:].mean(1))
  samples = energy.generate_seeds(config, states, num=500, search=search)
  start, _ = energy.fixed_starting_points(config, 500, search)
  off_ring = lambda x: np.mean(np.abs(np.linalg.norm(x, axis=-1) - 2.0))
  assert samples.shape == (1, 500, 2)
  assert all(off_ring(s) < 0.5 * off_ring(np.asarray(start)) for s in samples)


def test_the_energy_generator_is_for_toy_data_and_a_sane_search():
  with pytest.raises(ValueError, match="the energy-based generator is for the toy lab"):
    energy.make_discriminator(dcgan.get_config("smoke"))
  with pytest.raises(ValueError, match="the search needs steps >= 1"):
    energy.train_seeds(toy_ring.get_config(), [0], num_steps=1, search=energy.Search(steps=0))
