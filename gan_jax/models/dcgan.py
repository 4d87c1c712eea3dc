"""DCGAN (Radford et al., 2016) generator and discriminator for square images.

The generator projects z to a 4x4 feature map and doubles the resolution with
4x4 stride-2 transposed convolutions (layers.UpConv; BatchNorm + ReLU, tanh
output in [-1, 1]); the
discriminator mirrors it with stride-2 convolutions (BatchNorm + LeakyReLU 0.2,
none on the first layer) down to 4x4 and one 4x4 valid convolution to a single
logit. Weights start from N(0, 0.02) and BatchNorm scales from N(1, 0.02), as in
the paper. At 64x64 and width 64 this is the reference DCGAN-64.

Conditional variant (`label_classes` non-empty, models/conditional.py): G
concatenates learned label embeddings to z; D adds the projection term (and/or
an AC-GAN head) on its last hidden feature map, summed over space.
"""

from typing import Optional, Tuple


import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import conditional, layers
from gan_jax.models.layers import UpConv

_INIT = nn.initializers.normal(stddev=0.02)


def _scale_init(key, shape, dtype=jnp.float32):
  """BatchNorm scale ~ N(1, 0.02)."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def num_doublings(image_size: int) -> int:
  """How many x2 resolution steps lie between 4x4 and `image_size` (a power of 2 >= 8)."""
  return layers.num_doublings(image_size, "DCGAN")


def _batch_norm(train: bool) -> nn.BatchNorm:
  # momentum 0.9 == PyTorch's BatchNorm momentum 0.1.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, scale_init=_scale_init)


def spectral_normalised(layer: nn.Module, x: jax.Array, enabled: bool, train: bool) -> jax.Array:
  """`layer(x)`, with its kernel reparameterised as W / sigma(W) when `enabled` (SNGAN:
  the gradient flows through sigma; the power-iteration vector lives in `batch_stats`
  and advances in train mode). The power iteration runs in float32; the normalised
  kernel comes in x's dtype, so bfloat16 inputs keep the layer in bfloat16."""
  if enabled:
    return nn.SpectralNorm(layer, dtype=x.dtype)(x, update_stats=train)
  return layer(x)


class Generator(nn.Module):
  """z (batch, latent_dim) -> images (batch, size, size, channels) in [-1, 1].

  With `spectral_norm`, the projection and every UpConv are spectrally
  normalised layers (as the discriminator's option; SAGAN/BigGAN use it in G).
  """
  image_size: int = 64
  width: int = 64  # channels at the last hidden layer (ngf)
  channels: int = 3
  spectral_norm: bool = False
  upconv: str = "phases"  # how UpConv computes (layers.UPCONV_IMPLS); same function and params
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  embed_dim: int = 32  # conditional: size of each head's label embedding (concatenated to z)

  @nn.compact
  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None, *,
               train: bool) -> jax.Array:
    z = conditional.condition_latent(z, labels, self.label_classes, self.embed_dim, train)
    n = num_doublings(self.image_size)
    ch = self.width * 2**(n - 1)
    sn = lambda layer, x: spectral_normalised(layer, x, self.spectral_norm, train)
    x = sn(nn.Dense(4 * 4 * ch, use_bias=False, kernel_init=_INIT), z)
    x = x.reshape(z.shape[0], 4, 4, ch)
    x = nn.relu(_batch_norm(train)(x))
    for _ in range(n - 1):
      ch //= 2
      x = sn(UpConv(ch, kernel_init=_INIT, impl=self.upconv), x)
      x = nn.relu(_batch_norm(train)(x))
    x = sn(UpConv(self.channels, kernel_init=_INIT, impl=self.upconv), x)
    return jnp.tanh(x)


NORMS = ("batch", "layer", "none")


def _discriminator_norm(kind: str, train: bool):
  """The normalisation after each hidden conv of D: BatchNorm (DCGAN), LayerNorm (what
  WGAN-GP recommends: per-sample, so gradient penalties stay per-sample) or none."""
  if kind == "batch":
    return _batch_norm(train)
  if kind == "layer":
    return nn.LayerNorm(epsilon=1e-5)
  return lambda x: x


class Discriminator(nn.Module):
  """images (batch, size, size, channels) -> logits (batch,).

  With `spectral_norm`, every convolution is reparameterised as W / sigma(W)
  (SNGAN: the gradient flows through sigma; the power-iteration vector is
  kept in the `batch_stats` collection and advanced in train mode). The
  optimizer-side alternative is constraints.spectral_norm_projection.
  """
  image_size: int = 64
  width: int = 64  # channels at the first layer (ndf)
  norm: str = "batch"  # batch | layer | none
  spectral_norm: bool = False
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan
  downconv: str = "strided"  # how the stride-2 convs compute (layers.DOWNCONV_IMPLS); same params

  def _conv(self, x, features, train, index, stride2=True):
    # Named Conv_{index} whichever layer computes it, so parameter trees and checkpoints
    # do not depend on `downconv`.
    if stride2:
      conv = layers.DownConv(features, kernel_init=_INIT, impl=self.downconv, name=f"Conv_{index}")
    else:
      conv = nn.Conv(features, (4, 4), use_bias=False, kernel_init=_INIT, padding="VALID",
                     name=f"Conv_{index}")
    return spectral_normalised(conv, x, self.spectral_norm, train)

  @nn.compact
  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool,
               return_aux: bool = False):
    """Logits (batch,); with `return_aux` (AC-GAN) also {head: class logits}."""
    layers.check_image_size(x, self.image_size)
    n = num_doublings(self.image_size)
    ch = self.width
    x = nn.leaky_relu(self._conv(x, ch, train, 0), 0.2)
    for i in range(1, n):
      ch *= 2
      x = self._conv(x, ch, train, i)
      x = nn.leaky_relu(_discriminator_norm(self.norm, train)(x), 0.2)
    phi = x
    x = self._conv(x, 1, train, n, stride2=False)
    logit = x.reshape(x.shape[0])
    if not self.label_classes and not return_aux and labels is None:
      return logit
    return conditional.discriminator_output(
        logit, jnp.sum(phi, axis=(1, 2)), labels, self.label_classes, self.d_cond,
        self.spectral_norm, train, return_aux)
