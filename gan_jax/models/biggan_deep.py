"""BigGAN-deep's generator and discriminator (Brock et al., 2019, appendix B) for square images.

BigGAN-deep is BigGAN (models/biggan.py) with four times the residual blocks, each a
bottleneck, and otherwise BigGAN's pieces (self-attention, a shared class embedding,
conditional BatchNorm, spectral norm in G and D, orthogonal initialisation, the
projection D, the truncation trick). What differs, each here:
  - two blocks per resolution instead of one: in G a block that keeps the resolution
    and the channels, then one that doubles the resolution; in D one that halves it,
    then one that keeps it;
  - bottleneck blocks (`DeepGBlock`, `DeepDBlock`): a 1x1 conv narrows to a quarter of
    the channels (G: of the block's input; D: of its output), two 3x3 convs work at
    that width, a 1x1 conv widens to the block's output;
  - skip connections without a conv where they can: G keeps the first `features`
    channels of its input (and upsamples them); D average-pools its input and, where
    the block widens, concatenates a 1x1 conv's extra channels to it;
  - z is not split into chunks: [z, class embeddings] (z alone when unconditional)
    feeds G's first Dense layer and every conditional BatchNorm;
  - D starts with a 3x3 conv to its first width, and ends as BigGAN's: ReLU, global
    sum pooling, a Dense logit plus the projection term.

Layout, for a side of 4 * 2**n and `width` w, with the channels of resnet.generator_widths
and resnet.discriminator_widths (64x64, the paper's 128x128 scheme one level shorter):
  G: Dense -> 4x4 x 16w; at each of the n levels a block (c -> c) and an up-block
     (c -> the next level's width): 16w, 8w, 4w, 2w, w at 64x64; then BatchNorm, ReLU,
     conv3x3 to the image channels, tanh. Self-attention after the up-block whose
     output has side `attention`.
  D: conv3x3 -> w at full resolution; at each of the n levels a down-block (c -> the
     level's width) and a block at that width: 2w, 4w, 8w, 16w at 64x64, ending at 4x4.
     Self-attention after the pair of blocks whose side is `attention` (none when
     `attention` is the image side: D has no block there).
Every kernel and embedding starts orthogonal (BigGAN's G_init and D_init 'ortho').
"""

from typing import Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import biggan, conditional, layers, resnet
from gan_jax.models.biggan import (ORTHOGONAL, LinearConditionalBatchNorm, SelfAttention,
                                    orthogonal_conv)
from gan_jax.models.dcgan import spectral_normalised

BOTTLENECK = 4  # a block's inner width is its input's (G) or output's (D) channels / 4


def bottleneck_width(channels: int) -> int:
  """A bottleneck block's inner width for `channels` (ValueError when that leaves none)."""
  if channels < BOTTLENECK:
    raise ValueError(f"BigGAN-deep's blocks narrow {channels} channels to a quarter: give "
                     f"every block >= {BOTTLENECK} channels (raise model.g_width / d_width)")
  return channels // BOTTLENECK


class DeepGBlock(nn.Module):
  """G's bottleneck block (B, H, W, C) -> (B, H or 2H, W or 2W, features <= C), its four
  BatchNorms conditional on y (batch, D): cBN, ReLU, conv1x1 to C/4, cBN, ReLU, [nearest
  x2], conv3x3, cBN, ReLU, conv3x3, cBN, ReLU, conv1x1 to `features`; plus the input's
  first `features` channels [upsampled]."""
  features: int
  upsample: bool
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array, *, train: bool) -> jax.Array:
    if self.features > x.shape[-1]:
      raise ValueError(f"a BigGAN-deep G block keeps or narrows its channels: {x.shape[-1]} "
                       f"-> {self.features}")
    sn = lambda layer, v: spectral_normalised(layer, v, self.spectral_norm, train)
    cbn = lambda v: nn.relu(LinearConditionalBatchNorm(self.spectral_norm)(v, y, train=train))
    up = layers.upsample_nearest if self.upsample else (lambda v: v)
    inner = bottleneck_width(x.shape[-1])
    h = sn(orthogonal_conv(inner, 1), cbn(x))
    h = sn(orthogonal_conv(inner, 3), up(cbn(h)))
    h = sn(orthogonal_conv(inner, 3), cbn(h))
    h = sn(orthogonal_conv(self.features, 1), cbn(h))
    return h + up(x[..., :self.features])


class DeepDBlock(nn.Module):
  """D's bottleneck block (B, H, W, C) -> (B, H or H/2, W or W/2, features >= C): ReLU,
  conv1x1 to features/4, ReLU, conv3x3, ReLU, conv3x3, ReLU, [2x2 average pool], conv1x1
  to `features`; plus the input [pooled], with a conv1x1's `features - C` channels
  concatenated when the block widens."""
  features: int
  downsample: bool
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    channels = x.shape[-1]
    if self.features < channels:
      raise ValueError(f"a BigGAN-deep D block keeps or widens its channels: {channels} -> "
                       f"{self.features}")
    sn = lambda layer, v: spectral_normalised(layer, v, self.spectral_norm, train)
    down = layers.average_pool if self.downsample else (lambda v: v)
    inner = bottleneck_width(self.features)
    h = sn(orthogonal_conv(inner, 1), nn.relu(x))
    h = sn(orthogonal_conv(inner, 3), nn.relu(h))
    h = sn(orthogonal_conv(inner, 3), nn.relu(h))
    h = sn(orthogonal_conv(self.features, 1), down(nn.relu(h)))
    skip = down(x)
    if self.features > channels:
      skip = jnp.concatenate(
          [skip, sn(orthogonal_conv(self.features - channels, 1), skip)], axis=-1)
    return h + skip


class Generator(nn.Module):
  """z (batch, latent_dim) [, labels (batch, heads)] -> images (batch, size, size, channels)
  in [-1, 1]; see the module docstring."""
  image_size: int = 64
  width: int = 64
  channels: int = 3
  spectral_norm: bool = True
  attention: int = 32  # side of the up-block output after which self-attention runs (0: none)
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  shared_dim: int = 128  # conditional: size of each head's shared class embedding

  @nn.compact
  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None, *,
               train: bool) -> jax.Array:
    conditional.check_labels(labels, self.label_classes, "generator")
    widths = resnet.generator_widths(self.image_size, self.width)
    shared = biggan.shared_embedding(labels, self.label_classes, self.shared_dim, z.dtype, train)
    y = z if shared is None else jnp.concatenate([z, shared], axis=-1)
    sn = lambda layer, v: spectral_normalised(layer, v, self.spectral_norm, train)
    x = sn(nn.Dense(4 * 4 * widths[0], kernel_init=ORTHOGONAL), y)
    x = x.reshape(z.shape[0], 4, 4, widths[0])
    for features in widths[1:]:
      x = DeepGBlock(x.shape[-1], upsample=False, spectral_norm=self.spectral_norm)(
          x, y, train=train)
      x = DeepGBlock(features, upsample=True, spectral_norm=self.spectral_norm)(
          x, y, train=train)
      if x.shape[1] == self.attention:
        x = SelfAttention(self.spectral_norm)(x, train=train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x))
    return jnp.tanh(sn(orthogonal_conv(self.channels, 3), x))


class Discriminator(nn.Module):
  """images (batch, size, size, channels) [, labels] -> logits (batch,); see the module
  docstring."""
  image_size: int = 64
  width: int = 64
  spectral_norm: bool = True
  attention: int = 32  # side of the block pair after which self-attention runs (0: none)
  label_classes: Tuple[int, ...] = ()
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan

  @nn.compact
  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool,
               return_aux: bool = False):
    """Logits (batch,); with `return_aux` (AC-GAN) also {head: class logits}."""
    layers.check_image_size(x, self.image_size)
    widths = resnet.discriminator_widths(self.image_size, self.width)
    sn = lambda layer, v: spectral_normalised(layer, v, self.spectral_norm, train)
    x = sn(orthogonal_conv(widths[0], 3), x)
    for features in widths[1:]:
      x = DeepDBlock(features, downsample=True, spectral_norm=self.spectral_norm)(x, train=train)
      x = DeepDBlock(features, downsample=False, spectral_norm=self.spectral_norm)(x, train=train)
      if x.shape[1] == self.attention:
        x = SelfAttention(self.spectral_norm)(x, train=train)
    return biggan.sum_pooled_output(x, labels, self.label_classes, self.d_cond,
                                    self.spectral_norm, train, return_aux)


def build_biggan_deep(model_config, example_shape, label_classes: Tuple[int, ...] = ()):
  """(Generator, Discriminator) of BigGAN-deep for square images (side a power of two >= 8).

  Reads model_config.g_width, d_width and, with .get: attention (default 32), shared_dim
  (128), g_spectral_norm and d_spectral_norm (True), d_cond (projection). BigGAN's
  hierarchical_z and d_init have no BigGAN-deep counterpart: set, they must be False and
  'orthogonal'.
  """
  image_size, channels = layers.square_images(example_shape, "BigGAN-deep")
  attention = biggan.checked_attention(model_config.get("attention", 32), image_size)
  if model_config.get("hierarchical_z", False):
    raise ValueError("model.hierarchical_z=True: BigGAN-deep feeds all of z (with the class "
                     "embeddings) to every G block; set model.hierarchical_z=False")
  if model_config.get("d_init", "orthogonal") != "orthogonal":
    raise ValueError(f"model.d_init={model_config.d_init!r}: BigGAN-deep's D has bottleneck "
                     "blocks only, initialised orthogonal; set model.d_init='orthogonal'")
  if min(model_config.g_width, model_config.d_width) < 2:
    raise ValueError(f"model.g_width={model_config.g_width}, d_width={model_config.d_width}: "
                     "BigGAN-deep's narrowest blocks (2 x width channels) narrow to a quarter; "
                     "give widths >= 2")
  cond_g, cond_d = biggan.conditional_fields(model_config, label_classes)
  return (Generator(image_size=image_size, width=model_config.g_width, channels=channels,
                    spectral_norm=model_config.get("g_spectral_norm", True), attention=attention,
                    **cond_g),
          Discriminator(image_size=image_size, width=model_config.d_width,
                        spectral_norm=model_config.get("d_spectral_norm", True),
                        attention=attention, **cond_d))
