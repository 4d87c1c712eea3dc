"""R3GAN's networks (Huang et al., 2024, "The GAN is dead; long live the GAN! A modern GAN
baseline", config E) for square images: a plain ResNet modernised, with no normalisation,
no attention and no tricks, trained with the RpGAN loss and the R1 + R2 penalties
(configs/r3gan.py).

Both networks are stages of residual blocks at one resolution each, 4x4 to the image side:
  block       x + conv1x1(act(conv3x3_grouped(act(conv1x1(x))))): the first 1x1 conv widens
              to `expansion` times the channels, the 3x3 conv is grouped (`group_width`
              channels per group) and the last 1x1 conv narrows back; act is a learned
              per-channel bias, then a leaky ReLU (slope 0.2). Convolutions have no bias.
  G           z (with the labels' embeddings, conditional) -> Dense (no bias) scales a learned
              4x4 basis per channel -> stage 4x4; then per stage a 1x1 conv where the width
              changes, a bilinear x2 upsample ([1, 3, 3, 1] filter) and its blocks; a 1x1 conv
              to the image channels, no tanh.
  D           a 1x1 conv from the image channels, then per stage its blocks, a [1, 3, 3, 1]
              filtered /2 downsample and a 1x1 conv where the width changes; at 4x4 its blocks,
              a depthwise 4x4 conv (valid) to one feature per channel (phi) and a Dense (no
              bias) to the logit. Conditional: the projection and/or AC-GAN heads on phi
              (models/conditional.py), not the paper's embedding-only projection.
Widths: a stage at side s has min(width * image_size / s, max_channels) channels (G's
`g_width`, D's `d_width` at the image's side); R3GAN's FFHQ-64 is width 384, max_channels
768, 2 blocks per stage, expansion 2, groups of 16 channels, z of 64.

The grouped convolutions compute as `model.grouped_conv` says (layers.GroupedConv): lax's
grouped convolution, or one matrix product per kernel tap (taps), whose gradients XLA's CPU
backend computes 10-50x faster (benchmarks/grouped_conv.md); auto picks taps on the CPU.

Initialisation (fix-up style, which replaces normalisation): every kernel from
N(0, gain^2 / fan_in); in each block the first two convs have gain sqrt(2 / (1 + 0.2^2)) *
L^(-1/4), L the network's number of blocks, and the last conv starts at zero, so every block
starts as the identity; the other layers have gain 1, and G's basis starts N(0, 1).
"""

import math
from typing import List, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import conditional, layers
from gan_jax.models.stylegan2 import upsample2x, upsample_matrix

_SLOPE = 0.2
ACTIVATION_GAIN = math.sqrt(2.0 / (1.0 + _SLOPE**2))  # keeps a leaky ReLU's output variance


def msr_init(gain: float = 1.0) -> nn.initializers.Initializer:
  """N(0, gain^2 / fan_in) kernels (fan_in: the input channels one output sees, times the
  kernel's area)."""
  return nn.initializers.variance_scaling(gain**2, "fan_in", "normal")


def stage_widths(image_size: int, width: int, max_channels: int) -> List[int]:
  """Channels of the stages at 4x4, 8x8, ..., image_size (G's order; D runs them reversed)."""
  n = layers.num_doublings(image_size, "R3GAN")
  return [min(width * 2**(n - j), max_channels) for j in range(n + 1)]


def filtered_downsample2x(x: jax.Array) -> jax.Array:
  """/2 downsampling of NHWC `x` through the [1, 3, 3, 1] / 8 filter (the transpose of
  stylegan2.upsample2x, halved: edges repeated)."""
  dh = jnp.asarray(upsample_matrix(x.shape[1] // 2).T / 2.0, x.dtype)
  dw = jnp.asarray(upsample_matrix(x.shape[2] // 2).T / 2.0, x.dtype)
  return jnp.einsum("ih,nhwc,jw->nijc", dh, x, dw)


def _conv(features: int, size: int, init, name=None) -> nn.Conv:
  return nn.Conv(features, (size, size), padding="SAME", use_bias=False, kernel_init=init,
                 name=name)


class BiasedActivation(nn.Module):
  """x + a learned per-channel bias (from 0), through a leaky ReLU of slope 0.2."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return nn.leaky_relu(x + bias.astype(x.dtype), _SLOPE)


class DepthwiseBasis(nn.Module):
  """(B, H, W, C) -> (B, C): each channel's H x W map against its own learned H x W filter
  (a depthwise VALID convolution to 1x1, kernel (H, W, 1, C), written as one contraction)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _, h, w, c = x.shape
    kernel = self.param("kernel", msr_init(), (h, w, 1, c))
    return jnp.einsum("nhwc,hwc->nc", x, kernel[:, :, 0].astype(x.dtype))


class ResidualBlock(nn.Module):
  """R3GAN's inverted-bottleneck block (module docstring): (B, H, W, C) -> (B, H, W, C)."""
  total_blocks: int  # L, the blocks of the whole network (the init's variance scaling)
  expansion: int = 2
  group_width: int = 16
  grouped_conv: str = "lax"  # how the grouped 3x3 conv computes: lax | taps (layers.GroupedConv)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    wide = channels * self.expansion
    gain = ACTIVATION_GAIN * self.total_blocks ** (-1.0 / 4.0)  # L^(-1 / (2m - 2)), m = 3
    h = _conv(wide, 1, msr_init(gain), name="expand")(x)
    h = layers.GroupedConv(wide, 3, wide // self.group_width, msr_init(gain),
                           self.grouped_conv, name="grouped")(BiasedActivation(name="act1")(h))
    h = _conv(channels, 1, nn.initializers.zeros, name="narrow")(BiasedActivation(name="act2")(h))
    return x + h


class _Stages(nn.Module):
  """The fields G and D share: their stages' widths and blocks."""
  image_size: int = 64
  width: int = 384  # channels at the image's side (G's last stage, D's first); module docstring
  max_channels: int = 768
  blocks_per_stage: int = 2
  expansion: int = 2
  group_width: int = 16
  grouped_conv: str = "lax"  # lax | taps (layers.GroupedConv)
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional

  def widths(self) -> List[int]:
    """The stages' channels, 4x4 first."""
    return stage_widths(self.image_size, self.width, self.max_channels)

  def block(self) -> ResidualBlock:
    """A new residual block (call inside the compact __call__)."""
    total = len(self.widths()) * self.blocks_per_stage
    return ResidualBlock(total, self.expansion, self.group_width, self.grouped_conv)


class Generator(_Stages):
  """z (batch, latent_dim) -> images (batch, size, size, channels), unbounded (no tanh)."""
  channels: int = 3
  embed_dim: int = 32  # conditional: each head's label embedding, concatenated to z

  @nn.compact
  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None, *,
               train: bool = False) -> jax.Array:
    z = conditional.condition_latent(z, labels, self.label_classes, self.embed_dim, train)
    widths = self.widths()
    basis = self.param("basis", nn.initializers.normal(1.0), (4, 4, widths[0]))
    scale = nn.Dense(widths[0], use_bias=False, kernel_init=msr_init(), name="basis_scale")(z)
    x = basis[None].astype(scale.dtype) * scale[:, None, None, :]
    for j, features in enumerate(widths):
      if j:
        if features != x.shape[-1]:
          x = _conv(features, 1, msr_init(), name=f"transition_{j}")(x)
        x = upsample2x(x)
      for _ in range(self.blocks_per_stage):
        x = self.block()(x)
    return _conv(self.channels, 1, msr_init(), name="to_image")(x)


class Discriminator(_Stages):
  """images (batch, size, size, channels) -> logits (batch,)."""
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan

  @nn.compact
  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool = False,
               return_aux: bool = False):
    """Logits (batch,); with `return_aux` (AC-GAN) also {head: class logits}."""
    layers.check_image_size(x, self.image_size)
    widths = self.widths()[::-1]
    x = _conv(widths[0], 1, msr_init(), name="from_image")(x)
    for j, features in enumerate(widths):
      for _ in range(self.blocks_per_stage):
        x = self.block()(x)
      if j + 1 < len(widths):
        x = filtered_downsample2x(x)
        if widths[j + 1] != features:
          x = _conv(widths[j + 1], 1, msr_init(), name=f"transition_{j}")(x)
    phi = DepthwiseBasis(name="basis")(x)
    logit = nn.Dense(1, use_bias=False, kernel_init=msr_init(), name="logit")(phi)
    logit = logit.reshape(x.shape[0])
    if not self.label_classes and not return_aux and labels is None:
      return logit
    return conditional.discriminator_output(logit, phi, labels, self.label_classes, self.d_cond,
                                            False, train, return_aux)


def build_r3gan(model_config, example_shape, label_classes: Tuple[int, ...] = ()):
  """(Generator, Discriminator) of R3GAN for square images (side a power of two >= 8).

  Reads model_config.g_width, d_width and, with .get, max_channels (768), blocks_per_stage
  (2), expansion (2), group_width (16) and grouped_conv (auto: layers.resolve_grouped_conv);
  conditional: label_embed_dim (32), d_cond.
  ValueError where a stage's widened channels do not split into groups of group_width.
  """
  image_size, channels = layers.square_images(example_shape, "R3GAN")
  options = dict(max_channels=model_config.get("max_channels", 768),
                 blocks_per_stage=model_config.get("blocks_per_stage", 2),
                 expansion=model_config.get("expansion", 2),
                 group_width=model_config.get("group_width", 16))
  for name, value in options.items():
    if value < 1:
      raise ValueError(f"model.{name} must be >= 1, got {value}")
  for network, width in (("g", model_config.g_width), ("d", model_config.d_width)):
    if width < 1:
      raise ValueError(f"model.{network}_width must be >= 1, got {width}")
    for features in stage_widths(image_size, width, options["max_channels"]):
      if features * options["expansion"] % options["group_width"]:
        raise ValueError(
            f"R3GAN's grouped convs split {features} x expansion {options['expansion']} = "
            f"{features * options['expansion']} channels ({network}_width={width}, "
            f"max_channels={options['max_channels']}) into groups of "
            f"model.group_width={options['group_width']}, which does not divide them")
  cond = conditional.conditional_options(model_config, label_classes)
  options["grouped_conv"] = layers.resolve_grouped_conv(model_config.get("grouped_conv", "auto"))
  return (Generator(image_size=image_size, width=model_config.g_width, channels=channels,
                    **options, **cond["g"]),
          Discriminator(image_size=image_size, width=model_config.d_width, **options,
                        **cond["d"]))
