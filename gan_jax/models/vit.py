"""A vision-transformer discriminator: the lectures' "D's architecture is free (CNN,
transformer)".

The image is cut into non-overlapping patch_size x patch_size patches, each embedded
linearly (a stride-patch_size convolution) and given a learned position embedding; a
learned class token joins them, `depth` pre-LayerNorm transformer blocks (multi-head
self-attention, then a GELU MLP, each residual) mix the tokens, and the class token's
final LayerNorm-ed embedding goes through one linear layer to the logit (ViT, Dosovitskiy
et al., 2021; as a GAN discriminator, ViTGAN, Lee et al., 2022). With `spectral_norm`
every linear map (patch embedding, attention projections, MLP, head) is W / sigma(W), as
in the CNN families.

ViTGAN's three fixes for a transformer D, each an option (off by default):
- `attention='l2'`: scores -||q_i - k_j||^2 / sqrt(d) with queries and keys from one tied,
  bias-free projection (Kim et al., 2021). Dot-product attention is not Lipschitz at all (its input
  gradient grows without bound with the input's scale), so spectral normalisation cannot
  bound a D built from it; L2 attention with tied weights is Lipschitz.
- `improved_sn` (with spectral_norm): each map is W * sigma(W_0) / sigma(W), sigma(W_0) its
  top singular value at initialisation, so the map keeps the scale it was initialised with
  instead of being shrunk to 1 (ViTGAN's "improved spectral normalisation").
- `patch_overlap=o`: each token sees a (patch + 2o)-pixel window around its patch (the
  embedding's kernel; stride and token count unchanged, o pixels of zero padding), so
  neighbouring tokens share pixels and the patch grid is less visible to D.

It replaces the discriminator of an image family (`config.model.discriminator = 'vit'`,
gan_jax/models/__init__.py); parameters and compute follow the input's dtype, so
config.model.dtype='bfloat16' trains it in bfloat16 like the others. With label classes it
is conditional as the CNN discriminators are (models/conditional.py: a projection term
and/or AC-GAN heads on the class token's final embedding).
"""

from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import conditional, layers
from gan_jax.models.dcgan import spectral_normalised

_INIT = nn.initializers.normal(stddev=0.02)
ATTENTIONS = ("dot", "l2")


def check_options(image_size: int, patch_size: int, width: int, heads: int,
                  attention: str = "dot", patch_overlap: int = 0, spectral_norm: bool = False,
                  improved_sn: bool = False) -> None:
  """Raises ValueError naming the field when a ViT discriminator cannot be built."""
  if patch_size <= 0 or image_size % patch_size:
    raise ValueError(f"model.vit.patch_size must divide the image size {image_size}, got "
                     f"{patch_size}")
  if heads <= 0 or width % heads:
    raise ValueError(f"model.vit.heads must divide model.vit.width {width}, got {heads}")
  if attention not in ATTENTIONS:
    raise ValueError(f"unknown model.vit.attention {attention!r}; choose from: "
                     f"{', '.join(ATTENTIONS)}")
  if patch_overlap < 0:
    raise ValueError(f"model.vit.patch_overlap must be >= 0 pixels, got {patch_overlap}")
  if improved_sn and not spectral_norm:
    raise ValueError("model.vit.improved_sn rescales spectrally normalised maps: it needs "
                     "model.d_spectral_norm=True")


def attend(q: jax.Array, k: jax.Array, v: jax.Array, attention: str = "dot") -> jax.Array:
  """Multi-head self-attention of (batch, tokens, heads, head size) queries, keys and values:
  each query's softmax-weighted mean of the values, weighted by q.k / sqrt(d) ('dot') or
  by -||q - k||^2 / sqrt(d) ('l2'). Scores and softmax in float32; the result in v's dtype."""
  root = jnp.sqrt(q.shape[-1])
  if attention == "dot":
    scores = (jnp.einsum("bqhd,bkhd->bhqk", q, k) / root.astype(q.dtype)).astype(jnp.float32)
  else:  # ||q - k||^2 = |q|^2 + |k|^2 - 2 q.k, in float32 (bfloat16 would cancel badly)
    q, k = q.astype(jnp.float32), k.astype(jnp.float32)
    squared = jnp.einsum("bqhd,bqhd->bhq", q, q)[..., :, None] + jnp.einsum(
        "bkhd,bkhd->bhk", k, k)[..., None, :] - 2 * jnp.einsum("bqhd,bkhd->bhqk", q, k)
    scores = -jnp.maximum(squared, 0.0) / root
  weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def top_singular_value(kernel: jax.Array) -> jax.Array:
  """sigma_max of a Dense or Conv kernel seen as the (fan-in, features) matrix SN normalises."""
  return jnp.linalg.norm(kernel.reshape(-1, kernel.shape[-1]).astype(jnp.float32), 2)


def linear_map(module: nn.Module, make: Callable[..., nn.Module], x: jax.Array, name: str, *,
               spectral_norm: bool, improved: bool, train: bool, bias: bool = True) -> jax.Array:
  """`make(name=name, use_bias=...)` applied to x: as is, with W / sigma(W) (spectral_norm),
  or with W * sigma(W_0) / sigma(W) (improved: sigma(W_0) of the initial kernel, kept in
  `module`'s batch_stats as '<name>_initial_sigma'; the bias, '<name>_bias', outside the
  normalisation). `module` is the calling module, which owns those variables. Without
  `bias` the map is linear (no bias in any form)."""
  if not improved:
    return spectral_normalised(make(name=name, use_bias=bias), x, spectral_norm, train)
  layer = make(name=name, use_bias=False)
  y = nn.SpectralNorm(layer, dtype=x.dtype)(x, update_stats=train)
  kernel = layer.variables["params"]["kernel"]
  initial_sigma = module.variable("batch_stats", f"{name}_initial_sigma",
                                  lambda: top_singular_value(kernel))
  y = y * initial_sigma.value.astype(y.dtype)
  if not bias:
    return y
  return y + module.param(f"{name}_bias", nn.initializers.zeros, (y.shape[-1],)).astype(y.dtype)


class _Block(nn.Module):
  """One pre-LayerNorm transformer block on tokens (batch, tokens, width)."""
  heads: int
  mlp_ratio: int
  spectral_norm: bool
  improved_sn: bool = False
  attention: str = "dot"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    batch, tokens, width = x.shape
    dense = lambda features, h, name, bias=True: linear_map(
        self, lambda **kw: nn.Dense(features, kernel_init=_INIT, **kw), h, name,
        spectral_norm=self.spectral_norm, improved=self.improved_sn, train=train, bias=bias)
    h = nn.LayerNorm(epsilon=1e-5, name="attention_norm")(x)
    if self.attention == "l2":
      # Queries and keys from one projection (tied: Lipschitz) without a bias, which would
      # cancel in q - k: it would get no gradient and drift on rounding noise under Adam.
      q = k = dense(width, h, "qk", bias=False)
      v = dense(width, h, "v")
    else:
      q, k, v = jnp.split(dense(3 * width, h, "qkv"), 3, axis=-1)
    split = lambda t: t.reshape(batch, tokens, self.heads, width // self.heads)
    attended = attend(split(q), split(k), split(v), self.attention).reshape(batch, tokens, width)
    x = x + dense(width, attended, "attention_out")
    h = nn.LayerNorm(epsilon=1e-5, name="mlp_norm")(x)
    h = nn.gelu(dense(self.mlp_ratio * width, h, "mlp_in"))
    return x + dense(width, h, "mlp_out")


class Discriminator(nn.Module):
  """images (batch, size, size, channels) -> logits (batch,) (module docstring)."""
  image_size: int = 64
  patch_size: int = 8
  width: int = 128   # token embedding size
  depth: int = 4     # transformer blocks
  heads: int = 4     # attention heads (divide width)
  mlp_ratio: int = 4  # MLP hidden size / width
  spectral_norm: bool = False
  improved_sn: bool = False  # with spectral_norm: W * sigma(W_0) / sigma(W) (module docstring)
  attention: str = "dot"     # dot | l2 (tied queries and keys; Lipschitz)
  patch_overlap: int = 0     # pixels each token's window reaches into its neighbours
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan

  @nn.compact
  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool,
               return_aux: bool = False):
    """Logits (batch,); with `return_aux` (AC-GAN) also {head: class logits}."""
    layers.check_image_size(x, self.image_size)
    check_options(self.image_size, self.patch_size, self.width, self.heads, self.attention,
                  self.patch_overlap, self.spectral_norm, self.improved_sn)
    o = self.patch_overlap
    patches = lambda **kw: nn.Conv(self.width, (self.patch_size + 2 * o,) * 2,
                                   strides=self.patch_size, padding=((o, o), (o, o)),
                                   kernel_init=_INIT, **kw)
    h = linear_map(self, patches, x, "patch_embedding", spectral_norm=self.spectral_norm,
                   improved=self.improved_sn, train=train)
    h = h.reshape(x.shape[0], -1, self.width)
    position = self.param("position_embedding", _INIT, (1,) + h.shape[1:])
    token = self.param("class_token", nn.initializers.zeros, (1, 1, self.width))
    h = jnp.concatenate([jnp.broadcast_to(token.astype(h.dtype), (x.shape[0], 1, self.width)),
                         h + position.astype(h.dtype)], axis=1)
    for i in range(self.depth):
      h = _Block(self.heads, self.mlp_ratio, self.spectral_norm, self.improved_sn,
                 self.attention, name=f"block_{i}")(h, train=train)
    phi = nn.LayerNorm(epsilon=1e-5, name="final_norm")(h[:, 0])
    head = lambda **kw: nn.Dense(1, kernel_init=_INIT, **kw)
    logit = linear_map(self, head, phi, "head", spectral_norm=self.spectral_norm,
                       improved=self.improved_sn, train=train).reshape(x.shape[0])
    if not self.label_classes and not return_aux and labels is None:
      return logit
    return conditional.discriminator_output(logit, phi, labels, self.label_classes, self.d_cond,
                                            self.spectral_norm, train, return_aux)


def build_discriminator(model_config, example_shape: Sequence[int],
                        label_classes: Sequence[int] = ()) -> Discriminator:
  """The ViT discriminator config.model.vit describes, for square images of example_shape;
  conditional on labels with `label_classes` (as config.model.d_cond says)."""
  image_size, _ = layers.square_images(example_shape, "ViT")
  vit = model_config.vit
  spectral_norm = model_config.get("d_spectral_norm", False)
  # Runs saved before ViTGAN's options existed have none: they trained without them.
  attention, overlap = vit.get("attention", "dot"), vit.get("patch_overlap", 0)
  improved_sn = vit.get("improved_sn", False)
  check_options(image_size, vit.patch_size, vit.width, vit.heads, attention, overlap,
                spectral_norm, improved_sn)
  if vit.depth < 0 or vit.mlp_ratio <= 0:
    raise ValueError(f"model.vit.depth must be >= 0 and model.vit.mlp_ratio > 0, got "
                     f"{vit.depth}, {vit.mlp_ratio}")
  return Discriminator(image_size=image_size, patch_size=vit.patch_size, width=vit.width,
                       depth=vit.depth, heads=vit.heads, mlp_ratio=vit.mlp_ratio,
                       spectral_norm=spectral_norm, improved_sn=improved_sn,
                       attention=attention, patch_overlap=overlap,
                       label_classes=tuple(label_classes),
                       d_cond=model_config.get("d_cond", "projection"))
