"""The vision-transformer discriminator (gan_jax/models/vit.py) and swapping a family's D
(configs/vit_d.py's smoke run, a DCGAN G against it with R1: tests/test_configs.py)."""

import importlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import dcgan
from conftest import set_fields
from gan_jax import models
from gan_jax.models import vit

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def _vit(**fields):
  options = dict(image_size=16, patch_size=4, width=16, depth=2, heads=2)
  options.update(fields)
  return vit.Discriminator(**options)


def _patches_permuted(images: jax.Array, order: np.ndarray, patch: int) -> jax.Array:
  """`images` with their patch x patch patches (row-major) rearranged: patch i <- order[i]."""
  batch, size, _, channels = images.shape
  grid = size // patch
  tiles = images.reshape(batch, grid, patch, grid, patch, channels).transpose(0, 1, 3, 2, 4, 5)
  tiles = tiles.reshape(batch, grid * grid, patch, patch, channels)[:, order]
  return tiles.reshape(batch, grid, grid, patch, patch, channels).transpose(
      0, 1, 3, 2, 4, 5).reshape(images.shape)


def test_a_transformer_over_patches_sees_their_positions_only_through_its_embedding():
  """One logit per image; rearranging the patches leaves the logit unchanged once the
  position embedding is zero (attention and the class-token readout ignore token order)
  and changes it with the learned embedding; changing one pixel changes the logit."""
  d = _vit()
  images = jax.random.uniform(jax.random.key(0), (3, 16, 16, 3), minval=-1, maxval=1)
  variables = d.init(jax.random.key(1), images, train=False)
  apply = jax.jit(lambda v, x: d.apply(v, x, train=False))
  logits = apply(variables, images)
  assert logits.shape == (3,) and logits.dtype == jnp.float32
  order = np.random.default_rng(0).permutation(16)
  permuted = _patches_permuted(images, order, 4)
  np.testing.assert_array_equal(_patches_permuted(images, np.arange(16), 4), images)
  position = variables["params"]["position_embedding"]
  variables["params"]["position_embedding"] = position + 0.5  # far from 0
  assert float(jnp.max(jnp.abs(apply(variables, permuted) - apply(variables, images)))) > 1e-4
  variables["params"]["position_embedding"] = jnp.zeros_like(position)
  np.testing.assert_allclose(apply(variables, permuted), apply(variables, images),
                             rtol=1e-5, atol=1e-6)
  moved = apply(variables, images.at[0, 5, 7, 1].add(0.5))
  assert float(jnp.abs(moved[0] - apply(variables, images)[0])) > 1e-6
  np.testing.assert_array_equal(moved[1:], apply(variables, images)[1:])


def test_spectral_norm_tracks_every_linear_map_and_bfloat16_computes_in_bfloat16():
  """With spectral_norm every linear map (patch embedding, 4 per block, head) keeps a
  power-iteration state in batch_stats whose sigma converges to its kernel's top singular
  value; bfloat16 inputs give a bfloat16 logit."""
  d = _vit(spectral_norm=True)
  images = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3), minval=-1, maxval=1)
  variables = d.init(jax.random.key(1), images, train=False)
  stats = jax.tree_util.tree_leaves_with_path(variables["batch_stats"])
  assert len(stats) == 2 * (1 + 2 * 4 + 1)  # patch embedding, 4 maps per block, head; u and sigma
  advance = jax.jit(lambda v: d.apply(v, images, train=True, mutable=["batch_stats"])[1])
  for _ in range(30):  # power iteration converges: sigma -> the kernels' top singular value
    variables = {**variables, **advance(variables)}
  kernel = np.asarray(variables["params"]["block_0"]["mlp_in"]["kernel"])
  sigma, = [float(value) for layer in variables["batch_stats"]["block_0"].values()
            for name, value in layer.items() if name == "mlp_in/kernel/sigma"]
  np.testing.assert_allclose(sigma, np.linalg.svd(kernel, compute_uv=False)[0], rtol=1e-3)
  bf16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x,
                      variables["params"])
  out = d.apply({**variables, "params": bf16}, images.astype(jnp.bfloat16), train=False)
  assert out.dtype == jnp.bfloat16


def test_dot_product_attention_is_not_lipschitz_and_l2_attention_with_tied_weights_is():
  """Kim et al. (2021), measured: the input Jacobian's spectral norm of one attention map
  at t * X (X: four random tokens, one of them zero). Dot-product attention grows like t^2
  (by hand, d = 1 and unit weights, X = (t, 0): the zero token's output is the mean
  t / 2 and its derivative in its own value is t^2 / 4 + 1 / 2); L2 attention with tied
  query/key weights stays bounded (seeds 0-4 measured: dot x124-x897 from t = 1 to 32,
  L2 within x1.6 of its t = 1 value)."""
  rng = np.random.default_rng(0)
  n, d = 4, 4
  tokens = rng.normal(size=(n, d)).astype(np.float32)
  tokens[1] = 0
  w_q, w_k, w_v = [rng.normal(size=(d, d)).astype(np.float32) / np.sqrt(d) for _ in range(3)]

  def attention(x, kind):
    one_head = lambda t: t.reshape(1, n, 1, d)
    keys = x @ (w_q if kind == "l2" else w_k)  # l2: tied
    return vit.attend(one_head(x @ w_q), one_head(keys), one_head(x @ w_v), kind).reshape(-1)

  def jacobian_norms(kind):
    return np.array([np.linalg.norm(np.asarray(jax.jacobian(lambda x: attention(x, kind))(
        jnp.asarray(t * tokens))).reshape(n * d, n * d), 2) for t in (1, 4, 32)])

  dot, l2 = jacobian_norms("dot"), jacobian_norms("l2")
  assert dot[2] > 100 * dot[0] and dot[1] > 3 * dot[0], dot
  assert np.all(l2 < 2 * l2[0]), l2
  # By hand: d = 1, unit weights, X = (t, 0): d out_2 / d x_2 = t^2 / 4 + 1 / 2.
  one = lambda x: vit.attend(*(x.reshape(1, 2, 1, 1),) * 3, "dot").reshape(-1)[1]
  np.testing.assert_allclose(jax.grad(lambda x2: one(jnp.array([8.0, x2])))(0.0), 0.5 + 16.0,
                             rtol=1e-5)


def _plain_variables(improved_variables):
  """The unnormalised ViT's variables holding the same kernels and biases as an
  improved_sn one's ('<name>_bias' -> '<name>/bias'; no batch_stats)."""
  def convert(tree):
    out = {}
    for name, value in tree.items():
      if name.endswith("_bias"):
        out.setdefault(name[:-len("_bias")], {})["bias"] = value
      elif isinstance(value, dict):
        out.setdefault(name, {}).update(convert(value))
      else:
        out[name] = value
    return out
  return {"params": convert(improved_variables["params"])}


def test_improved_spectral_norm_keeps_each_maps_initial_scale():
  """improved_sn: W * sigma(W_0) / sigma(W). Once the power iteration has converged the
  D at initialisation is the unnormalised D (each map keeps its initial scale, where plain
  SN shrinks it to 1), and scaling every kernel changes nothing."""
  images = jax.random.uniform(jax.random.key(0), (3, 16, 16, 3), minval=-1, maxval=1)
  improved = _vit(spectral_norm=True, improved_sn=True)
  variables = improved.init(jax.random.key(1), images, train=False)
  stats = variables["batch_stats"]
  kernel = variables["params"]["block_0"]["mlp_in"]["kernel"]
  np.testing.assert_allclose(stats["block_0"]["mlp_in_initial_sigma"],
                             np.linalg.svd(np.asarray(kernel), compute_uv=False)[0], rtol=1e-5)
  train_apply = jax.jit(lambda v: improved.apply(v, images, train=True, mutable=["batch_stats"]))
  for _ in range(300):  # converge the power iterations
    variables = {**variables, **train_apply(variables)[1]}
  logits = train_apply(variables)[0]
  plain = _vit().apply(_plain_variables(variables), images, train=False)
  np.testing.assert_allclose(logits, plain, rtol=1e-4, atol=1e-5)
  plain_sn = _vit(spectral_norm=True).init(jax.random.key(1), images, train=False)
  sn_logits = _vit(spectral_norm=True).apply(plain_sn, images, train=True,
                                               mutable=["batch_stats"])[0]
  assert float(jnp.max(jnp.abs(sn_logits - plain))) > 10 * float(jnp.max(jnp.abs(logits - plain)))
  scaled = jax.tree_util.tree_map_with_path(
      lambda path, x: 3 * x if path[-1].key == "kernel" else x, variables["params"])
  np.testing.assert_allclose(train_apply({**variables, "params": scaled})[0], logits,
                             rtol=1e-4, atol=1e-5)


def test_overlapping_patches_let_a_pixel_reach_its_neighbouring_tokens():
  """patch_overlap=2 with 4-pixel patches: each token's window is 8 pixels at stride 4, so
  an interior pixel reaches 2 x 2 tokens and a corner pixel one; the token count (16) stays;
  without overlap every pixel reaches one token. With L2 attention and improved SN too,
  the D gives bf16 logits from bf16 inputs."""
  images = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3), minval=-1, maxval=1)

  def reached(d, variables, row, col):
    embed = lambda x: d.apply(variables, x, train=False, capture_intermediates=True)[1][
        "intermediates"]["patch_embedding"]["__call__"][0]
    moved = embed(images.at[0, row, col, 0].add(1.0)) - embed(images)
    return int(jnp.sum(jnp.any(jnp.abs(moved[0]) > 1e-6, axis=-1)))

  overlapping = _vit(patch_overlap=2, attention="l2", spectral_norm=True, improved_sn=True)
  variables = overlapping.init(jax.random.key(1), images, train=False)
  assert variables["params"]["patch_embedding"]["kernel"].shape == (8, 8, 3, 16)
  assert variables["params"]["position_embedding"].shape == (1, 16, 16)
  block = variables["params"]["block_0"]
  assert {"qk", "v", "v_bias"} <= set(block) and "qkv" not in block
  assert "qk_bias" not in block  # a bias on the tied projection would cancel in q - k
  assert reached(overlapping, variables, 5, 9) == 4 and reached(overlapping, variables, 0, 0) == 1
  plain = _vit()
  plain_variables = plain.init(jax.random.key(1), images, train=False)
  assert reached(plain, plain_variables, 5, 9) == 1
  bf16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), variables["params"])
  out = overlapping.apply({**variables, "params": bf16}, images.astype(jnp.bfloat16), train=False)
  assert out.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(out)))


def test_a_labelled_run_gets_a_conditional_transformer_d():
  """With labels the swapped D is conditional like the CNN ones: D(x, y) - D(x, y') =
  <E[y] - E[y'], phi(x)>, phi the class token's final embedding (projection); AC-GAN heads
  give class logits per label head; G is the family's conditional G."""
  config = _config(d_cond="projection+acgan")
  generator, d = models.build_models(config.model, (16, 16, 3), label_classes=(3, 4))
  assert isinstance(d, vit.Discriminator) and d.label_classes == (3, 4)
  assert generator.label_classes == (3, 4)
  images = jax.random.uniform(jax.random.key(0), (3, 16, 16, 3), minval=-1, maxval=1)
  labels = jnp.array([[0, 1], [2, 3], [1, 0]], jnp.int32)
  other = jnp.array([[2, 3], [2, 3], [0, 2]], jnp.int32)  # image 1's labels unchanged
  variables = d.init(jax.random.key(1), images, labels, train=False)
  (logits, aux), state = d.apply(variables, images, labels, train=False, return_aux=True,
                                 capture_intermediates=True)
  phi = state["intermediates"]["final_norm"]["__call__"][0]
  assert aux["0"].shape == (3, 3) and aux["1"].shape == (3, 4)
  embedding = variables["params"]["conditional"]["projection"]
  e = lambda y: embedding["head_0"]["embedding"][y[:, 0]] + embedding["head_1"]["embedding"][y[:, 1]]
  diff = logits - d.apply(variables, images, other, train=False)
  np.testing.assert_allclose(diff, jnp.sum((e(labels) - e(other)) * phi, axis=1), rtol=1e-4,
                             atol=1e-7)
  assert float(jnp.abs(diff[1])) == 0.0 and float(jnp.min(jnp.abs(diff[::2]))) > 1e-6
  with pytest.raises(ValueError, match="is conditional .* call it with labels"):
    d.apply(variables, images, train=False)
  stylegan2 = set_fields(importlib.import_module("configs.stylegan2").get_config("smoke"),
                         {"model.discriminator": "vit"})
  generator, d = models.build_models(stylegan2.model, (16, 16, 3), label_classes=(3,))
  assert generator.label_classes == (3,) and isinstance(d, vit.Discriminator)


def _config(**fields):
  """configs/dcgan.py:smoke with model.discriminator='vit' and `fields` of config.model set
  (nested with dots: 'vit.heads')."""
  config = dcgan.get_config("smoke")
  config.model.discriminator = "vit"
  return set_fields(config, {f"model.{field}": value for field, value in fields.items()})


@pytest.mark.parametrize("recipe", ["dcgan", "sngan_resnet", "biggan", "stylegan2"])
def test_model_discriminator_swaps_the_family_d_and_refuses_what_it_cannot_pair(recipe):
  config = importlib.import_module(f"configs.{recipe}").get_config("smoke")
  shape = (config.data.image_size, config.data.image_size, 3)
  family_generator, _ = models.build_models(config.model, shape)
  config.model.discriminator = "vit"
  generator, discriminator = models.build_models(config.model, shape)
  assert isinstance(discriminator, vit.Discriminator) and discriminator.width == 16
  assert generator == family_generator  # the family's own G, unchanged
  if recipe != "dcgan":
    return
  saved = _config().to_dict()  # a run saved before ViTGAN's options existed has none
  for field in ("attention", "improved_sn", "patch_overlap"):
    del saved["model"]["vit"][field]
  _, old = models.build_models(ml_collections.ConfigDict(saved).model, (16, 16, 3))
  assert (old.attention, old.improved_sn, old.patch_overlap) == ("dot", False, 0)
  with pytest.raises(ValueError, match="unknown discriminator 'vits'; choose from: vit"):
    models.build_models(_config(discriminator="vits").model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.discriminator='vit' replaces the discriminator of "
                                       "dcgan, resnet, biggan, biggan_deep, stylegan2, "
                                       "r3gan; "
                                       "model.name='progan'"):
    models.build_models(_config(name="progan").model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.vit.patch_size must divide the image size 16, "
                                       "got 5"):
    models.build_models(_config(**{"vit.patch_size": 5}).model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.vit.heads must divide model.vit.width 16, got 3"):
    models.build_models(_config(**{"vit.heads": 3}).model, (16, 16, 3))
  with pytest.raises(ValueError, match="unknown model.vit.attention 'cosine'; choose from: "
                                       "dot, l2"):
    models.build_models(_config(**{"vit.attention": "cosine"}).model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.vit.patch_overlap must be >= 0 pixels, got -1"):
    models.build_models(_config(**{"vit.patch_overlap": -1}).model, (16, 16, 3))
  with pytest.raises(ValueError, match="model.vit.improved_sn .* needs model.d_spectral_norm"):
    models.build_models(_config(**{"vit.improved_sn": True}).model, (16, 16, 3))
  with pytest.raises(ValueError, match="ViT needs square images"):
    models.build_models(_config().model, (16, 8, 3))
