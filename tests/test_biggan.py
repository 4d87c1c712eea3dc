"""BigGAN: self-attention, hierarchical z, the shared embedding, orthogonal regularisation and
truncation. The recipe trains, evaluates (truncated too) and samples in
tests/test_conditional.py's test_evaluation_and_the_sampling_command_on_a_conditional_run."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from gan_jax import latents, models, optim, regularisers, sampling, train
from gan_jax.models import biggan, resnet


def _model_config(**fields):
  base = dict(name="biggan", g_width=8, d_width=8, latent_dim=18, attention=8, shared_dim=4)
  base.update(fields)
  return ml_collections.ConfigDict(base)


def _init(module, *args):
  return jax.jit(functools.partial(module.init, train=False))(jax.random.PRNGKey(0), *args)


# ---- orthogonal regularisation ----------------------------------------------------------

def test_orthogonality_gradient_is_the_penalty_gradient_and_biggans_formula():
  kernel = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 4, 5))
  ours = regularisers.orthogonality_gradient(kernel)
  np.testing.assert_allclose(ours, jax.grad(regularisers.orthogonality_penalty)(kernel),
                             rtol=1e-5, atol=1e-5)
  # BigGAN's code: W (outputs, fan-in), grad = 2 (W W^T * (1 - I)) W.
  w = np.asarray(kernel).reshape(-1, 5).T
  biggan_grad = 2 * ((w @ w.T) * (1 - np.eye(5))) @ w
  np.testing.assert_allclose(np.asarray(ours).reshape(-1, 5).T, biggan_grad, rtol=1e-5, atol=1e-4)


def test_orthogonal_filters_of_any_norms_have_no_penalty():
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(12, 4)))
  kernel = jnp.asarray((q * np.array([0.5, 1.0, 2.0, 3.0])).reshape(1, 1, 12, 4), jnp.float32)
  assert float(regularisers.orthogonality_penalty(kernel)) < 1e-10
  np.testing.assert_allclose(regularisers.orthogonality_gradient(kernel), 0, atol=1e-5)
  # Hand-checked: two unit filters at 60 degrees correlate 0.5: penalty 0.5 * 2 * 0.25.
  two = jnp.array([[1.0, 0.5], [0.0, np.sqrt(0.75)]])
  np.testing.assert_allclose(regularisers.orthogonality_penalty(two), 0.25, rtol=1e-6)


def test_filter_coherence_is_the_rms_cosine_between_distinct_filters():
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(12, 4)))
  scaled = jnp.asarray((q * np.array([0.5, 1.0, 2.0, 3.0])).reshape(1, 1, 12, 4), jnp.float32)
  assert float(regularisers.filter_coherence(scaled)) < 1e-6  # orthogonal, any norms
  # Hand-checked: filters at 0, 60 and 90 degrees (pairwise cosines 0.5, 0, sqrt(0.75)):
  # sqrt((0.25 + 0 + 0.75) / 3), whatever their norms.
  three = jnp.array([[1.0, 0.5, 0.0], [0.0, np.sqrt(0.75), 1.0]]) * jnp.array([3.0, 1.0, 0.2])
  np.testing.assert_allclose(regularisers.filter_coherence(three), np.sqrt(1 / 3), rtol=1e-6)
  np.testing.assert_allclose(regularisers.filter_coherence(jnp.ones((5, 3))), 1.0, rtol=1e-6)
  # A zero filter counts as orthogonal: pairs (0, 1) and (1, 2) are 0, (0, 2) is 1.
  with_zero = jnp.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(regularisers.filter_coherence(with_zero), np.sqrt(1 / 3), rtol=1e-6)
  assert np.isnan(regularisers.filter_coherence(jnp.ones((4, 1))))
  gaussian = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 64, 32))
  np.testing.assert_allclose(regularisers.filter_coherence(gaussian), 1 / np.sqrt(576), rtol=0.1)


def test_regulariser_goes_before_the_optimizer_and_touches_kernels_only():
  params = {"Dense_0": {"kernel": jnp.array([[1.0, 0.5], [0.0, 1.0]]), "bias": jnp.ones(2)}}
  config = ml_collections.ConfigDict(dict(name="sgd", g_lr=0.1, d_lr=0.1, g_betas=(0.0, 0.0),
                                          d_betas=(0.0, 0.0), g_orthogonal_reg=0.5,
                                          d_orthogonal_reg=0.0))
  zero = jax.tree.map(jnp.zeros_like, params)
  tx = optim.make_optimizer(config, "g")
  updates, _ = tx.update(zero, tx.init(params), params)
  expected = -0.1 * 0.5 * regularisers.orthogonality_gradient(params["Dense_0"]["kernel"])
  np.testing.assert_allclose(updates["Dense_0"]["kernel"], expected, rtol=1e-6)
  assert float(jnp.abs(updates["Dense_0"]["kernel"]).sum()) > 0
  np.testing.assert_array_equal(updates["Dense_0"]["bias"], 0)
  d_tx = optim.make_optimizer(config, "d")  # strength 0: no regulariser in the chain
  np.testing.assert_array_equal(d_tx.update(zero, d_tx.init(params), params)[0]["Dense_0"]
                                ["kernel"], 0)
  with pytest.raises(ValueError, match="strength must be >= 0"):
    regularisers.orthogonal_regularisation(-1.0)
  with pytest.raises(ValueError, match="needs params"):
    tx.update(zero, tx.init(params))


def test_the_regulariser_alone_decorrelates_the_filters():
  kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 8, 6)) * 0.2
  params = {"kernel": kernel}
  tx = optax.chain(regularisers.orthogonal_regularisation(1.0), optax.sgd(0.05))
  state = tx.init(params)
  before = float(regularisers.orthogonality_penalty(kernel))
  for _ in range(200):
    updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
    params = optax.apply_updates(params, updates)
  assert float(regularisers.orthogonality_penalty(params["kernel"])) < before / 100


# ---- self-attention ---------------------------------------------------------------------

def test_self_attention_starts_as_the_identity_and_then_reaches_every_position():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 16))
  block = biggan.SelfAttention(spectral_norm=False)
  variables = _init(block, x)
  out, weights = block.apply(variables, x, train=False, return_weights=True)
  np.testing.assert_array_equal(out, x)  # gamma starts at 0
  assert weights.shape == (2, 64, 16)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  variables = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.ones_like(v) if "gamma" in jax.tree_util.keystr(p) else v, variables)
  corner = lambda x: block.apply(variables, x, train=False)[:, 0, 0].sum()
  far = jax.grad(corner)(x)[:, 7, 7]  # a conv stack of this depth could not see (7, 7)
  assert float(jnp.abs(far).max()) > 1e-4
  with pytest.raises(ValueError, match="even-sided map with >= 8 channels"):
    _init(block, jnp.ones((1, 6, 6, 4)))


# ---- generator and discriminator -------------------------------------------------------

def test_hierarchical_z_and_the_shared_embedding_reach_every_g_block():
  g, d = models.build_models(_model_config(), (16, 16, 3), (3, 4))
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 18))
  labels = jnp.array([[0, 1], [1, 2], [2, 3], [0, 0]], jnp.int32)
  variables = _init(g, z, labels)
  params = variables["params"]
  tables = params["shared_embedding"]
  assert {k: v["embedding"].shape for k, v in tables.items()} == {"head_0": (3, 4),
                                                                  "head_1": (4, 4)}
  assert params["Dense_0"]["kernel"].shape[0] == 6  # the first chunk of z alone
  for block in ("GBlock_0", "GBlock_1"):  # each block: its z chunk (6) + 2 heads x 4
    for norm in ("LinearConditionalBatchNorm_0", "LinearConditionalBatchNorm_1"):
      assert params[block][norm]["gain"]["kernel"].shape[0] == 6 + 2 * 4
  images = jax.jit(lambda z, labels: g.apply(variables, z, labels, train=False))
  assert images(z, labels).shape == (4, 16, 16, 3)
  grad_z = jax.jit(jax.grad(lambda z: images(z, labels).sum()))(z)
  for chunk in np.split(np.asarray(grad_z), 3, axis=1):  # every chunk moves the image
    assert np.abs(chunk).max() > 1e-6
  assert float(jnp.abs(images(z, labels) - images(z, labels[::-1])).max()) > 1e-4
  x = images(z, labels)
  d_vars = _init(d, x, labels)
  assert "SelfAttention_0" in d_vars["params"] and "SelfAttention_0" in params
  logits = jax.jit(lambda labels: d.apply(d_vars, x, labels, train=False))
  assert logits(labels).shape == (4,)
  assert float(jnp.abs(logits(labels) - logits((labels + 1) % 3)).max()) > 0


def test_unconditional_without_hierarchical_z_has_plain_batchnorm_and_wide_d_blocks():
  g, d = models.build_models(_model_config(hierarchical_z=False, latent_dim=10, attention=0),
                             (16, 16, 3))
  params = _init(g, jnp.ones((2, 10)))["params"]
  assert params["Dense_0"]["kernel"].shape[0] == 10
  assert set(params["GBlock_0"]) == {"BatchNorm_0", "BatchNorm_1", "Conv_0", "Conv_1", "Conv_2"}
  assert "SelfAttention_0" not in params
  d_params = _init(d, jnp.ones((2, 16, 16, 3)))["params"]
  # BigGAN's wide D block: the first conv already widens (8 -> 16; SNGAN's keeps 8).
  assert d_params["DownBlock_0"]["Conv_0"]["kernel"].shape == (3, 3, 8, 16)
  sngan = resnet.DownBlock(16)
  assert _init(sngan, jnp.ones((1, 8, 8, 8)))["params"]["Conv_0"]["kernel"].shape == (3, 3, 8, 8)


def _is_orthogonal(kernel) -> bool:
  """Whether a kernel or embedding, as a matrix (fan in, fan out), has orthonormal columns
  (tall) or rows (wide): what an orthogonal initialiser draws."""
  matrix = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
  small = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
  return np.allclose(small, np.eye(len(small)), atol=1e-5)


def _orthogonality(d_init: str):
  """{'G' or 'D' + parameter path: whether it starts orthogonal} over every kernel and
  embedding of a conditional BigGAN (projection and AC-GAN heads) with model.d_init."""
  config = _model_config(d_cond="projection+acgan", d_init=d_init, g_spectral_norm=False,
                         d_spectral_norm=False)  # SN changes no start; half the compile
  g, d = models.build_models(config, (16, 16, 3), (3, 4))
  labels = jnp.array([[0, 1], [1, 2]], jnp.int32)
  checked = {}
  for name, module, args in (("G", g, (jnp.ones((2, 18)), labels)),
                             ("D", d, (jnp.ones((2, 16, 16, 3)), labels))):
    for path, leaf in jax.tree_util.tree_leaves_with_path(_init(module, *args)["params"]):
      if path[-1].key in ("kernel", "embedding"):
        checked[name + jax.tree_util.keystr(path)] = _is_orthogonal(leaf)
  return checked


def test_every_kernel_and_embedding_of_g_and_d_starts_orthogonal():
  """BigGAN initialises G and D orthogonally (its G_init and D_init 'ortho'): D's residual
  blocks, its projection embeddings and (AC-GAN) class heads too. model.d_init=resnet
  starts D's blocks and class heads as the SNGAN ResNet's D (He/Xavier-scaled uniform)."""
  checked = _orthogonality("orthogonal")
  assert all(checked.values()), [k for k, ok in checked.items() if not ok]
  d_keys = [k for k in checked if k.startswith("D")]
  for part in ("OptimisedBlock_0", "DownBlock_0", "DownBlock_1", "SelfAttention_0",
               "'projection'", "aux_head_0"):
    assert any(part in k for k in d_keys), (part, d_keys)
  assert len(d_keys) >= 12
  resnet_init = _orthogonality("resnet")
  assert set(resnet_init) == set(checked)
  for key, orthogonal in resnet_init.items():
    from_resnet = "Block_" in key or "'conditional'" in key  # the blocks and the heads
    assert orthogonal != (key.startswith("D") and from_resnet), key


@pytest.mark.parametrize("fields, message", [
    (dict(attention=12), "model.attention=12: choose 0 .* 8, 16"),
    (dict(latent_dim=20), r"latent_dim=20 does not split evenly into the 3 chunks .*e\.g\. 21"),
    (dict(d_init="he"), "unknown model.d_init 'he'; choose from: orthogonal, resnet"),
])
def test_bad_biggan_settings_are_refused(fields, message):
  with pytest.raises(ValueError, match=message):
    models.build_models(_model_config(**fields), (16, 16, 3))


def test_conditional_generator_needs_its_labels():
  g, _ = models.build_models(_model_config(), (16, 16, 3), (3,))
  with pytest.raises(ValueError, match="this generator is conditional"):
    _init(g, jnp.ones((2, 18)))


# ---- truncation -------------------------------------------------------------------------

def test_truncated_latents_stay_inside_the_threshold_and_are_fixed_by_the_seed():
  z = sampling.fixed_latents(0, 4000, 8, "gaussian", truncation=0.5)
  assert float(jnp.abs(z).max()) <= 0.5
  assert 0.25 < float(z.std()) < 0.3  # N(0, 1) on [-0.5, 0.5]: std 0.2841
  np.testing.assert_array_equal(z, sampling.fixed_latents(0, 4000, 8, "gaussian",
                                                          truncation=0.5))
  wide = sampling.fixed_latents(0, 4000, 8, "gaussian", truncation=100.0)
  assert 0.97 < float(wide.std()) < 1.03
  with pytest.raises(ValueError, match="applies to Gaussian latents"):
    sampling.fixed_latents(0, 4, 8, "uniform", truncation=1.0)
  with pytest.raises(ValueError, match="threshold must be > 0"):
    latents.truncated_gaussian(jax.random.PRNGKey(0), (2,), -1.0)


def test_bad_truncation_fails_validation():
  from configs import biggan as biggan_config  # pylint: disable=g-import-not-at-top
  config = biggan_config.get_config("smoke")
  config.eval.truncation = -1.0
  with pytest.raises(train.ConfigError, match=r"eval.truncation: truncation threshold must be > 0"):
    train.validate_config(config)
  config.eval.truncation = 1.0
  config.model.latent_dist = "uniform"
  with pytest.raises(train.ConfigError, match="applies to Gaussian latents; this generator was "
                     "trained on 'uniform' z"):
    train.validate_config(config)
