"""Discriminator diagnostics: kernel sigmas, gradient norms, W estimate, accuracy."""

import jax
import numpy as np
import pytest

from gan_jax import constraints, diagnostics
from gan_jax.step import batch_to_float
from test_step import tiny
from test_train import read_metrics

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def test_diagnostics_of_a_tiny_dcgan():
  step, state, images = tiny()
  out = jax.jit(lambda s, r, k: diagnostics.discriminator_diagnostics(
      step.generator, step.discriminator, step.sample_latent, step.latent_dim, s, r, k))(
          state, batch_to_float(images[0]), jax.random.PRNGKey(0))
  sigma_keys = {k for k in out if k.startswith("diag/sigma/")}
  assert sigma_keys == {f"diag/sigma/Conv_{i}" for i in range(3)}  # 16x16 DCGAN: 3 convs
  np.testing.assert_allclose(out["diag/sigma/Conv_0"], np.linalg.svd(
      constraints.as_matrix(state.d_params["Conv_0"]["kernel"]), compute_uv=False)[0], rtol=1e-3)
  for kind in ("real", "fake", "interp"):
    assert 0 < out[f"diag/grad_norm_{kind}_mean"] <= out[f"diag/grad_norm_{kind}_max"]
  assert 0.0 <= out["diag/d_accuracy"] <= 1.0
  assert np.isfinite(out["diag/w_estimate"])


def test_diagnostics_are_logged(tmp_path, smoke_config):
  smoke_config.train.num_steps = 2
  smoke_config.log.diagnostics = True
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  train.train_and_evaluate(smoke_config, str(tmp_path))
  row = read_metrics(tmp_path)[-1]
  assert {"diag/w_estimate", "diag/d_accuracy", "diag/grad_norm_interp_max",
          "diag/sigma/Conv_0"} <= set(row)
