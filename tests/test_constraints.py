"""Lipschitz constraints as optax transformations: bounds, masks, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import constraints


def params():
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  return {"Dense_0": {"kernel": 3.0 * jax.random.normal(keys[0], (8, 16)), "bias": jnp.full(16, 5.0)},
          "Conv_0": {"kernel": 2.0 * jax.random.normal(keys[1], (3, 3, 4, 8))},
          "BatchNorm_0": {"scale": jnp.full(8, 4.0)}}


def one_update(tx, p, grads=None):
  state = tx.init(p)
  grads = grads if grads is not None else jax.tree.map(jnp.ones_like, p)
  updates, state = jax.jit(tx.update)(grads, state, p)
  return optax.apply_updates(p, updates), state


def test_path_mask_selects_kernels_by_default():
  assert constraints.path_mask(params()) == {
      "Dense_0": {"kernel": True, "bias": False}, "Conv_0": {"kernel": True},
      "BatchNorm_0": {"scale": False}}
  assert constraints.path_mask(params(), r"^Dense_0/") == {
      "Dense_0": {"kernel": True, "bias": True}, "Conv_0": {"kernel": False},
      "BatchNorm_0": {"scale": False}}


def test_weight_clip_bounds_are_exact_and_only_masked_leaves_move():
  p = params()
  grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(1), x.shape), p)
  new, _ = one_update(optax.chain(optax.sgd(0.3), constraints.weight_clip(0.01)), p, grads)
  for kernel in (new["Dense_0"]["kernel"], new["Conv_0"]["kernel"]):
    assert float(jnp.max(jnp.abs(kernel))) <= 0.01  # exact: no ulp past the bound
    assert float(jnp.max(jnp.abs(kernel))) == pytest.approx(0.01)
  expected_bias = p["Dense_0"]["bias"] - 0.3 * grads["Dense_0"]["bias"]
  np.testing.assert_allclose(new["Dense_0"]["bias"], expected_bias, rtol=1e-6)  # untouched
  np.testing.assert_allclose(new["BatchNorm_0"]["scale"],
                             p["BatchNorm_0"]["scale"] - 0.3 * grads["BatchNorm_0"]["scale"])


def test_weight_clip_is_exact_for_many_random_values():
  """p + (clip(p + u) - p) can round past the bound; the projection steps back."""
  p = {"kernel": jax.random.uniform(jax.random.PRNGKey(2), (100_000,), minval=-1, maxval=1)}
  new, _ = one_update(optax.chain(optax.sgd(1.0), constraints.weight_clip(0.01)), p,
                      {"kernel": -jax.random.normal(jax.random.PRNGKey(3), (100_000,))})
  assert float(jnp.max(jnp.abs(new["kernel"]))) <= 0.01


def test_spectral_norm_projection_bounds_sigma_after_one_update():
  new, state = one_update(optax.chain(optax.adam(1e-3), constraints.spectral_norm_projection()),
                          params())
  for kernel in (new["Dense_0"]["kernel"], new["Conv_0"]["kernel"]):
    sigma = jnp.linalg.svd(constraints.as_matrix(kernel), compute_uv=False)[0]
    assert float(sigma) <= 1.0 + 1e-3
    assert float(sigma) > 0.99  # scaled to the bound, not below it
  np.testing.assert_allclose(new["Dense_0"]["bias"], 5.0 - 1e-3, rtol=1e-5)  # not a kernel
  assert state[1].inner_state.u["Dense_0"]["kernel"].shape == (8,)  # (fan-in,) power vector


def test_spectral_norm_leaves_small_kernels_alone_and_keeps_tracking():
  small = {"kernel": 0.01 * jax.random.normal(jax.random.PRNGKey(4), (6, 5))}
  tx = optax.chain(optax.sgd(0.0), constraints.spectral_norm_projection(target=2.0))
  new, _ = one_update(tx, small)
  np.testing.assert_allclose(new["kernel"], small["kernel"], rtol=1e-6)
  p = params()
  # Adam at 1e-3 with random gradient directions (every weight moves ~1e-3 each step).
  tx = optax.chain(optax.adam(1e-3), constraints.spectral_norm_projection(target=0.5))
  state = tx.init(p)
  update = jax.jit(tx.update)
  for i in range(20):
    grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(10 + i), x.shape), p)
    updates, state = update(grads, state, p)
    p = optax.apply_updates(p, updates)
    sigma = jnp.linalg.svd(constraints.as_matrix(p["Conv_0"]["kernel"]), compute_uv=False)[0]
    assert float(sigma) <= 0.5 * (1 + 1e-3)


def test_conv_kernels_are_read_as_fan_in_by_outputs():
  kernel = jnp.arange(3 * 3 * 4 * 8, dtype=jnp.float32).reshape(3, 3, 4, 8)
  assert constraints.as_matrix(kernel).shape == (36, 8)
  exact = jnp.linalg.svd(constraints.as_matrix(kernel), compute_uv=False)[0]
  np.testing.assert_allclose(constraints.largest_singular_value(kernel), exact, rtol=1e-4)


def test_registry_and_bad_arguments():
  assert constraints.CONSTRAINTS.names() == ["spectral_norm_projection", "weight_clip"]
  with pytest.raises(ValueError):
    constraints.weight_clip(0.0)
  with pytest.raises(ValueError):
    constraints.spectral_norm_projection(target=-1.0)
