"""BEGAN (Berthelot et al., 2017): an auto-encoder discriminator scored by its reconstruction error.

D encodes its input to an `embed_dim` code and decodes it back; its logit is minus the
per-sample reconstruction error, logit(x) = -L(x) with L(x) = mean |x - dec(enc(x))|^p
over pixels and channels (p = 1, the paper's, or 2), so that, as for every
discriminator here, larger means more real (BEGAN's logits are <= 0). The losses that
read such logits are losses.began (with the step's equilibrium controller,
step.Equilibrium) and losses.ebgan; train.make_step pairs them with this family only.
This is the lectures' energy-based view of D (an auto-encoder's error as the energy)
with a learned generator in place of the argmax.

Images (the paper's blocks, without its skip connections): the decoder projects its
input to an 8x8 map of `width` channels and, at each resolution, applies two 3x3
convolutions with ELU, then doubles the resolution by nearest-neighbour upsampling;
after the last resolution one 3x3 convolution to the image channels, linear (no tanh,
as in the paper: samples are clipped to [-1, 1] when saved). The encoder mirrors it: a
3x3 convolution with ELU, then at level l = 1, 2, ... two 3x3 convolutions of l *
`width` channels and, below the top level, a stride-2 3x3 convolution to (l + 1) *
`width` channels, all with ELU; then a dense layer to the code. The generator is the
decoder architecture, from z. Points (the toy lab's flat data): the decoder and the
encoder are MLPs with `depth` ELU layers of `width` units.
"""

import math
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import layers
from gan_jax.registry import check_choice

RECONSTRUCTIONS = ("l1", "l2")
_BASE = 8  # the decoder's first map is 8x8 (the paper's)


def num_upsamplings(image_size: int) -> int:
  """How many x2 steps lie between the 8x8 base map and `image_size` (a power of two
  >= 16); ValueError otherwise."""
  n = layers.num_doublings(image_size, "BEGAN") - 1
  if n < 1:
    raise ValueError(f"BEGAN needs an image size that is a power of two >= 16, got {image_size}")
  return n


def _conv(features: int, stride: int = 1) -> nn.Conv:
  return nn.Conv(features, (3, 3), strides=(stride, stride), padding="SAME")


class ImageDecoder(nn.Module):
  """code (batch, d) -> images (batch, size, size, channels), linear output (module docstring)."""
  image_size: int = 64
  width: int = 64
  channels: int = 3

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    n = num_upsamplings(self.image_size)
    x = nn.Dense(_BASE * _BASE * self.width)(h).reshape(h.shape[0], _BASE, _BASE, self.width)
    for level in range(n + 1):
      x = nn.elu(_conv(self.width)(x))
      x = nn.elu(_conv(self.width)(x))
      if level < n:
        x = layers.upsample_nearest(x)
    return _conv(self.channels)(x)


class ImageEncoder(nn.Module):
  """images (batch, size, size, channels) -> code (batch, embed_dim) (module docstring)."""
  image_size: int = 64
  width: int = 64
  embed_dim: int = 64

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    layers.check_image_size(x, self.image_size)
    n = num_upsamplings(self.image_size)
    x = nn.elu(_conv(self.width)(x))
    for level in range(1, n + 2):
      x = nn.elu(_conv(level * self.width)(x))
      x = nn.elu(_conv(level * self.width)(x))
      if level <= n:
        x = nn.elu(_conv((level + 1) * self.width, stride=2)(x))
    return nn.Dense(self.embed_dim)(x.reshape(x.shape[0], -1))


class PointDecoder(nn.Module):
  """code (batch, d) -> points (batch, *example_shape): `depth` ELU layers, linear output."""
  example_shape: Tuple[int, ...] = (2,)
  width: int = 128
  depth: int = 3

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    x = h
    for _ in range(self.depth):
      x = nn.elu(nn.Dense(self.width)(x))
    x = nn.Dense(math.prod(self.example_shape))(x)
    return x.reshape(h.shape[0], *self.example_shape)


class PointEncoder(nn.Module):
  """points (batch, *example_shape) -> code (batch, embed_dim): `depth` ELU layers."""
  width: int = 128
  depth: int = 3
  embed_dim: int = 8

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for _ in range(self.depth):
      x = nn.elu(nn.Dense(self.width)(x))
    return nn.Dense(self.embed_dim)(x)


def reconstruction_error(x: jax.Array, reconstruction: jax.Array, kind: str) -> jax.Array:
  """Per-sample L(x) (batch,): the mean over all other axes of |x - reconstruction| ('l1')
  or its square ('l2'), in float32."""
  diff = x.astype(jnp.float32) - reconstruction.astype(jnp.float32)
  err = jnp.abs(diff) if kind == "l1" else jnp.square(diff)
  return jnp.mean(err.reshape(err.shape[0], -1), axis=1)


class Generator(nn.Module):
  """z (batch, latent_dim) -> samples (batch, *example_shape): the decoder architecture."""
  example_shape: Tuple[int, ...] = (64, 64, 3)
  width: int = 64
  depth: int = 3  # points only

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    del train  # no normalisation layers
    if len(self.example_shape) == 3:
      size, _, channels = self.example_shape
      return ImageDecoder(size, self.width, channels)(z)
    return PointDecoder(self.example_shape, self.width, self.depth)(z)


class Discriminator(nn.Module):
  """samples -> logits (batch,) = minus the auto-encoder's reconstruction error (module
  docstring); `reconstruct` returns the reconstruction itself."""
  example_shape: Tuple[int, ...] = (64, 64, 3)
  width: int = 64
  embed_dim: int = 64
  depth: int = 3  # points only
  reconstruction: str = "l1"  # the error L: l1 (the paper's) | l2
  # Marks a discriminator whose logits are minus reconstruction errors (train.make_step
  # pairs it with the auto-encoder losses, losses.AUTOENCODER_LOSSES).
  scores_reconstruction = True

  def setup(self):
    check_choice("BEGAN reconstruction", self.reconstruction, RECONSTRUCTIONS)
    if len(self.example_shape) == 3:
      size, _, channels = self.example_shape
      self.encoder = ImageEncoder(size, self.width, self.embed_dim)
      self.decoder = ImageDecoder(size, self.width, channels)
    else:
      self.encoder = PointEncoder(self.width, self.depth, self.embed_dim)
      self.decoder = PointDecoder(self.example_shape, self.width, self.depth)

  def reconstruct(self, x: jax.Array) -> jax.Array:
    """dec(enc(x)), in x's shape."""
    return self.decoder(self.encoder(x))

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train  # no normalisation layers
    return -reconstruction_error(x, self.reconstruct(x), self.reconstruction)


def build_began(model_config, example_shape) -> Tuple[nn.Module, nn.Module]:
  """(Generator, Discriminator) of BEGAN for square images (side a power of two >= 16) or
  flat points. Reads model_config.g_width, d_width and, with .get, embed_dim (default 64 for
  images, half the dimension for points),
  reconstruction (default l1), g_depth and d_depth (points; default 3)."""
  example_shape = tuple(example_shape)
  if len(example_shape) == 3:
    if example_shape[0] != example_shape[1]:
      raise ValueError(f"BEGAN needs square images (size, size, channels), got data of shape "
                       f"{example_shape}")
    num_upsamplings(example_shape[0])  # fail early on an unsupported size
  elif len(example_shape) != 1:
    raise ValueError(f"BEGAN takes square images or flat points, got data of shape "
                     f"{example_shape}")
  for network in ("g", "d"):
    if model_config.get(f"{network}_spectral_norm", False):
      raise ValueError(f"model.{network}_spectral_norm: BEGAN's layers have no spectral-norm "
                       "form; constrain them with config.constraint instead")
  reconstruction = model_config.get("reconstruction", "l1")
  check_choice("model.reconstruction", reconstruction, RECONSTRUCTIONS)
  # The code must be smaller than the data, or D learns the identity and reconstructs
  # fakes as well as reals: points of d dimensions default to a code of max(1, d // 2).
  default_embed = 64 if len(example_shape) == 3 else max(1, example_shape[0] // 2)
  embed_dim = model_config.get("embed_dim", default_embed)
  if embed_dim < 1:
    raise ValueError(f"model.embed_dim must be >= 1, got {embed_dim}")
  return (Generator(example_shape, model_config.g_width, model_config.get("g_depth", 3)),
          Discriminator(example_shape, model_config.d_width, embed_dim,
                        model_config.get("d_depth", 3), reconstruction))
