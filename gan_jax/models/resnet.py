"""The ResNet generator and discriminator of SNGAN (Miyato et al., 2018) for square images.

Generator: Dense z -> 4x4 feature map, then one up-block per doubling of the
resolution (pre-activation: BatchNorm, ReLU, nearest x2 upsample, conv3x3,
BatchNorm, ReLU, conv3x3; shortcut: upsample + conv1x1), then BatchNorm, ReLU,
conv3x3 to the image channels and tanh (outputs in [-1, 1]).

Discriminator: an "optimised" first block (conv3x3, ReLU, conv3x3, avgpool2;
shortcut avgpool2 + conv1x1), down-blocks (ReLU, conv3x3 keeping the input
width, ReLU, conv3x3 to the block's width, avgpool2; shortcut conv1x1 +
avgpool2) down to 4x4, one more block at 4x4
without downsampling (identity shortcut when its channels do not change), ReLU,
global sum pooling and Dense -> one logit. No normalisation in D except the
optional spectral norm of every layer (W / sigma(W), `spectral_norm`), which
SNGAN uses; G can have it too (`spectral_norm` of the generator).

Channel schedule, for a side of 4 * 2**n (n up-blocks in G, n - 1 down-blocks
after the optimised block in D) and `width` w:
  G: w * min(2**(n - j), 16) channels at resolution 4 * 2**j (j = 0: the 4x4
     map; up-block j outputs level j): 64x64 is 16w, 8w, 4w, 2w, w; 128x128
     is 16w, 16w, 8w, 4w, 2w, w; 32x32 is 8w, 4w, 2w, w.
  D: block k (k = 0: the optimised block, k = n: the last, 4x4 block) outputs
     w * min(2**k, 16): 64x64 is w, 2w, 4w, 8w and 16w at 4x4; 128x128 is
     w, 2w, 4w, 8w, 16w, 16w.
At 64x64 and 128x128 with w = 64 these follow the layout of the SNGAN code's
ResNets for those sizes (its CIFAR models instead keep one width throughout).
At 64x64, w = 64 and z of 100: 11,761,923 G and 10,141,441 D parameters. Convolutions and
Dense layers have biases; the residual convolutions start from Glorot-uniform
with gain sqrt(2), shortcuts, the Dense layers and G's last conv with gain 1,
as in the SNGAN code.

Conditional variant (`label_classes` non-empty, models/conditional.py): G
concatenates learned label embeddings to z (g_cond='concat') or makes the
up-blocks' BatchNorms conditional on the labels (g_cond='cbn'); D adds the
projection term of the cGAN-with-projection paper (and/or an AC-GAN head) on the
summed features.
"""

from typing import List, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import conditional, layers
from gan_jax.models.dcgan import spectral_normalised

Initializer = nn.initializers.Initializer

_RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")
_INIT = nn.initializers.xavier_uniform()
_MAX_MULTIPLIER = 16


def num_blocks(image_size: int) -> int:
  """How many x2 resolution steps lie between 4x4 and `image_size` (a power of 2 >= 8)."""
  return layers.num_doublings(image_size, "the ResNet GAN")


def generator_widths(image_size: int, width: int) -> List[int]:
  """G's channels at each resolution 4x4, 8x8, ..., image_size (n + 1 entries)."""
  n = num_blocks(image_size)
  return [width * min(2**(n - j), _MAX_MULTIPLIER) for j in range(n + 1)]


def discriminator_widths(image_size: int, width: int) -> List[int]:
  """D's block output channels: the optimised block, the down-blocks, the last 4x4 block."""
  n = num_blocks(image_size)
  return [width * min(2**k, _MAX_MULTIPLIER) for k in range(n + 1)]


def _batch_norm(train: bool) -> nn.BatchNorm:
  """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


def _downsample(x: jax.Array) -> jax.Array:
  """2x2 average pooling with stride 2."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _conv(features: int, size: int, init=_RESIDUAL_INIT) -> nn.Conv:
  """A size x size 'SAME' convolution with a bias."""
  return nn.Conv(features, (size, size), padding="SAME", kernel_init=init)


def _block_inits(kernel_init: Optional[Initializer]) -> Tuple[Initializer, Initializer]:
  """(3x3 convs' initialiser, 1x1 shortcut's) of a D block: `kernel_init` for both, or
  SNGAN's (He-scaled uniform for the residual path, Xavier for the shortcut) when None."""
  if kernel_init is None:
    return _RESIDUAL_INIT, _INIT
  return kernel_init, kernel_init


class UpBlock(nn.Module):
  """Generator residual block: (B, H, W, C) -> (B, 2H, 2W, features); with `label_classes`
  its two BatchNorms are conditional on the labels (conditional.ConditionalBatchNorm)."""
  features: int
  spectral_norm: bool = False
  label_classes: Tuple[int, ...] = ()  # non-empty: conditional BatchNorm (model.g_cond=cbn)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, labels: Optional[jax.Array] = None
               ) -> jax.Array:
    sn = lambda layer, y: spectral_normalised(layer, y, self.spectral_norm, train)
    if self.label_classes:
      norm = lambda y: conditional.ConditionalBatchNorm(self.label_classes)(
          y, labels, train=train)
    else:
      norm = lambda y: _batch_norm(train)(y)
    h = layers.upsample_nearest(nn.relu(norm(x)))
    h = sn(_conv(self.features, 3), h)
    h = nn.relu(norm(h))
    h = sn(_conv(self.features, 3), h)
    shortcut = sn(_conv(self.features, 1, _INIT), layers.upsample_nearest(x))
    return h + shortcut


class OptimisedBlock(nn.Module):
  """D's first block, on the images: (B, H, W, C) -> (B, H/2, W/2, features)."""
  features: int
  spectral_norm: bool = False
  kernel_init: Optional[Initializer] = None  # every conv's initialiser (None: SNGAN's)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    sn = lambda layer, y: spectral_normalised(layer, y, self.spectral_norm, train)
    residual, shortcut_init = _block_inits(self.kernel_init)
    h = nn.relu(sn(_conv(self.features, 3, residual), x))
    h = _downsample(sn(_conv(self.features, 3, residual), h))
    shortcut = sn(_conv(self.features, 1, shortcut_init), _downsample(x))
    return h + shortcut


class DownBlock(nn.Module):
  """D's pre-activation residual block: (B, H, W, C) -> (B, H/2, W/2, features), or
  (B, H, W, features) without `downsample` (identity shortcut when C == features).
  Its first conv keeps C channels, the second maps C -> features (SNGAN); with `wide`
  (BigGAN's D) the first conv already maps to `features`."""
  features: int
  downsample: bool = True
  spectral_norm: bool = False
  wide: bool = False
  kernel_init: Optional[Initializer] = None  # every conv's initialiser (None: SNGAN's)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    sn = lambda layer, y: spectral_normalised(layer, y, self.spectral_norm, train)
    residual, shortcut_init = _block_inits(self.kernel_init)
    pool = _downsample if self.downsample else (lambda y: y)
    hidden = self.features if self.wide else x.shape[-1]  # SNGAN widens in the second conv
    h = sn(_conv(hidden, 3, residual), nn.relu(x))
    h = pool(sn(_conv(self.features, 3, residual), nn.relu(h)))
    shortcut = x
    if self.downsample or x.shape[-1] != self.features:
      shortcut = pool(sn(_conv(self.features, 1, shortcut_init), x))
    return h + shortcut


class Generator(nn.Module):
  """z (batch, latent_dim) -> images (batch, size, size, channels) in [-1, 1].

  With `spectral_norm`, the Dense layer and every convolution are spectrally
  normalised (the power-iteration vectors live in `batch_stats`).
  """
  image_size: int = 64
  width: int = 64  # channels at the last up-block; see the module docstring
  channels: int = 3
  spectral_norm: bool = False
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  embed_dim: int = 32  # conditional: size of each head's label embedding (concatenated to z)
  g_cond: str = "concat"  # conditional: concat (embeddings to z) | cbn (conditional BatchNorm)

  @nn.compact
  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None, *,
               train: bool) -> jax.Array:
    cbn = bool(self.label_classes) and self.g_cond == "cbn"
    if cbn:
      conditional.check_labels(labels, self.label_classes, "generator")
    else:
      z = conditional.condition_latent(z, labels, self.label_classes, self.embed_dim, train)
    widths = generator_widths(self.image_size, self.width)
    sn = lambda layer, y: spectral_normalised(layer, y, self.spectral_norm, train)
    x = sn(nn.Dense(4 * 4 * widths[0], kernel_init=_INIT), z)
    x = x.reshape(z.shape[0], 4, 4, widths[0])
    for features in widths[1:]:
      x = UpBlock(features, spectral_norm=self.spectral_norm,
                  label_classes=self.label_classes if cbn else ())(
                      x, train=train, labels=labels if cbn else None)
    x = nn.relu(_batch_norm(train)(x))
    x = sn(_conv(self.channels, 3, _INIT), x)
    return jnp.tanh(x)


class Discriminator(nn.Module):
  """images (batch, size, size, channels) -> logits (batch,).

  With `spectral_norm`, every convolution and the final Dense layer are
  reparameterised as W / sigma(W) (SNGAN: the gradient flows through sigma;
  the power-iteration vectors are kept in `batch_stats` and advance in train mode).
  """
  image_size: int = 64
  width: int = 64  # channels of the first block; see the module docstring
  spectral_norm: bool = True
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan

  @nn.compact
  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool,
               return_aux: bool = False):
    """Logits (batch,); with `return_aux` (AC-GAN) also {head: class logits}."""
    layers.check_image_size(x, self.image_size)
    widths = discriminator_widths(self.image_size, self.width)
    x = OptimisedBlock(widths[0], spectral_norm=self.spectral_norm)(x, train=train)
    for features in widths[1:-1]:
      x = DownBlock(features, spectral_norm=self.spectral_norm)(x, train=train)
    x = DownBlock(widths[-1], downsample=False, spectral_norm=self.spectral_norm)(x, train=train)
    phi = jnp.sum(nn.relu(x), axis=(1, 2))
    x = spectral_normalised(nn.Dense(1, kernel_init=_INIT), phi, self.spectral_norm, train)
    logit = x.reshape(x.shape[0])
    if not self.label_classes and not return_aux and labels is None:
      return logit
    return conditional.discriminator_output(logit, phi, labels, self.label_classes, self.d_cond,
                                            self.spectral_norm, train, return_aux)


def build_resnet(model_config, example_shape, label_classes: Tuple[int, ...] = ()):
  """(Generator, Discriminator) of SNGAN's ResNet for square images (side a power of two >= 8).

  Reads model_config.g_width, d_width and, with .get, d_spectral_norm (default
  True) and g_spectral_norm (default False); conditional (`label_classes`):
  label_embed_dim (default 32) and d_cond (default projection).
  """
  image_size, channels = layers.square_images(example_shape, "the ResNet GAN")
  num_blocks(image_size)  # fail early on an unsupported size
  cond = conditional.conditional_options(model_config, label_classes)
  return (Generator(image_size=image_size, width=model_config.g_width, channels=channels,
                    spectral_norm=model_config.get("g_spectral_norm", False),
                    **cond["g"]),
          Discriminator(image_size=image_size, width=model_config.d_width,
                        spectral_norm=model_config.get("d_spectral_norm", True), **cond["d"]))

