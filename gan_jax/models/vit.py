"""A vision-transformer discriminator: the lectures' "D's architecture is free (CNN,
transformer)".

The image is cut into non-overlapping patch_size x patch_size patches, each embedded
linearly (a stride-patch_size convolution) and given a learned position embedding; a
learned class token joins them, `depth` pre-LayerNorm transformer blocks (multi-head
self-attention, then a GELU MLP, each residual) mix the tokens, and the class token's
final LayerNorm-ed embedding goes through one linear layer to the logit (ViT, Dosovitskiy
et al., 2021; as a GAN discriminator, ViTGAN, Lee et al., 2022, without its L2 attention
and patch overlap). With `spectral_norm` every linear map (patch embedding, attention
projections, MLP, head) is W / sigma(W), as in the CNN families.

It replaces the discriminator of an image family (`config.model.discriminator = 'vit'`,
gan_jax/models/__init__.py); parameters and compute follow the input's dtype, so
config.model.dtype='bfloat16' trains it in bfloat16 like the others.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import layers
from gan_jax.models.dcgan import spectral_normalised

_INIT = nn.initializers.normal(stddev=0.02)


def check_shape(image_size: int, patch_size: int, width: int, heads: int) -> None:
  """Raises ValueError naming the field when a ViT discriminator cannot be built."""
  if patch_size <= 0 or image_size % patch_size:
    raise ValueError(f"model.vit.patch_size must divide the image size {image_size}, got "
                     f"{patch_size}")
  if heads <= 0 or width % heads:
    raise ValueError(f"model.vit.heads must divide model.vit.width {width}, got {heads}")


class _Block(nn.Module):
  """One pre-LayerNorm transformer block on tokens (batch, tokens, width)."""
  heads: int
  mlp_ratio: int
  spectral_norm: bool

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    batch, tokens, width = x.shape
    dense = lambda features, h, name: spectral_normalised(
        nn.Dense(features, kernel_init=_INIT, name=name), h, self.spectral_norm, train)
    h = nn.LayerNorm(epsilon=1e-5, name="attention_norm")(x)
    q, k, v = jnp.split(dense(3 * width, h, "qkv"), 3, axis=-1)
    split = lambda t: t.reshape(batch, tokens, self.heads, width // self.heads)
    q, k, v = split(q), split(k), split(v)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(width // self.heads).astype(x.dtype)
    weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(x.dtype)
    attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, tokens, width)
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

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    layers.check_image_size(x, self.image_size)
    check_shape(self.image_size, self.patch_size, self.width, self.heads)
    patches = nn.Conv(self.width, (self.patch_size,) * 2, strides=self.patch_size,
                      padding="VALID", kernel_init=_INIT, name="patch_embedding")
    h = spectral_normalised(patches, x, self.spectral_norm, train)
    h = h.reshape(x.shape[0], -1, self.width)
    position = self.param("position_embedding", _INIT, (1,) + h.shape[1:])
    token = self.param("class_token", nn.initializers.zeros, (1, 1, self.width))
    h = jnp.concatenate([jnp.broadcast_to(token.astype(h.dtype), (x.shape[0], 1, self.width)),
                         h + position.astype(h.dtype)], axis=1)
    for i in range(self.depth):
      h = _Block(self.heads, self.mlp_ratio, self.spectral_norm, name=f"block_{i}")(h, train=train)
    h = nn.LayerNorm(epsilon=1e-5, name="final_norm")(h[:, 0])
    head = nn.Dense(1, kernel_init=_INIT, name="head")
    return spectral_normalised(head, h, self.spectral_norm, train).reshape(x.shape[0])


def build_discriminator(model_config, example_shape: Sequence[int]) -> Discriminator:
  """The ViT discriminator config.model.vit describes, for square images of example_shape."""
  image_size, _ = layers.square_images(example_shape, "ViT")
  vit = model_config.vit
  check_shape(image_size, vit.patch_size, vit.width, vit.heads)
  if vit.depth < 0 or vit.mlp_ratio <= 0:
    raise ValueError(f"model.vit.depth must be >= 0 and model.vit.mlp_ratio > 0, got "
                     f"{vit.depth}, {vit.mlp_ratio}")
  return Discriminator(image_size=image_size, patch_size=vit.patch_size, width=vit.width,
                       depth=vit.depth, heads=vit.heads, mlp_ratio=vit.mlp_ratio,
                       spectral_norm=model_config.get("d_spectral_norm", False))
