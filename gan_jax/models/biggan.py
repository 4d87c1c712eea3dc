"""BigGAN's generator and discriminator (Brock et al., 2019) for square images.

What BigGAN adds to the SNGAN ResNet (models/resnet.py), each a field here:
  - self-attention (SAGAN, Zhang et al. 2019) at one resolution in G and in D
    (`attention`; `SelfAttention`): every position attends to every (2x2
    max-pooled) position, the result added back scaled by a learned gamma that
    starts at 0, so an untrained block is the identity;
  - hierarchical z (`hierarchical_z`): z splits into one chunk for the 4x4
    input and one per up-block, each chunk conditioning that block's BatchNorms;
  - a shared class embedding (`shared_dim`): one learned vector per class of
    each label head, computed once in G and concatenated to every block's z
    chunk (instead of separate class-conditional gains per layer);
  - conditional BatchNorm from that vector (`LinearConditionalBatchNorm`):
    BatchNorm without its own affine, then gamma = 1 + A y and beta = B y for
    linear maps A, B of the block's conditioning vector y;
  - spectral norm in G as well as D, orthogonal initialisation of every kernel and
    embedding of G and D (BigGAN's G_init and D_init 'ortho'; `init_scheme`='resnet' starts
    D's blocks and class heads as the SNGAN ResNet's D), and (in the optimizer,
    gan_jax/regularisers.py) orthogonal regularisation of G's kernels;
  - the truncation trick at sampling time (gan_jax/latents.py truncated_gaussian).
An unconditional BigGAN (no labels) conditions its BatchNorms on the z chunks
alone; without hierarchical z too, its BatchNorms are plain.

Layout, for a side of 4 * 2**n and `width` w (BigGAN's `ch`): G's channels are
resnet.generator_widths (64x64: 16w at 4x4, then 8w, 4w, 2w, w), D's blocks
resnet.discriminator_widths (64x64: w, 2w, 4w, 8w, 16w), as BigGAN's 64x64
architecture. G's up-blocks: cBN, ReLU, nearest x2, conv3x3, cBN, ReLU,
conv3x3, shortcut nearest x2 + conv1x1; then BatchNorm, ReLU, conv3x3, tanh.
D's blocks are BigGAN's "wide" ones (the first conv already widens) and its head
sums ReLU features and adds the projection term when conditional
(models/conditional.py). Attention follows the G block, and the first D block,
whose output has side `attention` (0: none); as in BigGAN's code, D has none when
`attention` is the image side (BigGAN-64's setting: attention at 64 in G only).
"""

from typing import Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import conditional, layers, resnet
from gan_jax.models.dcgan import spectral_normalised

ORTHOGONAL = nn.initializers.orthogonal()  # BigGAN's G_init and D_init 'ortho' (and BigGAN-deep's)
# model.d_init: how D's residual blocks and class heads (projection embeddings, AC-GAN
# heads) start. orthogonal: as every other kernel of G and D (BigGAN's D_init 'ortho');
# resnet: as the SNGAN ResNet's D (He-scaled and Xavier uniform, the AC-GAN heads flax's
# LeCun normal; this code's BigGAN D before 2026-11-24, which the CPU figures of
# 2026-11-23 in benchmarks/README.md were measured with).
D_INITS = {"orthogonal": ORTHOGONAL, "resnet": None}


def orthogonal_conv(features: int, size: int, use_bias: bool = True) -> nn.Conv:
  """A size x size 'SAME' convolution with orthogonal initialisation (BigGAN's G_init)."""
  return nn.Conv(features, (size, size), padding="SAME", use_bias=use_bias, kernel_init=ORTHOGONAL)


def _max_pool(x: jax.Array) -> jax.Array:
  """2x2 max pooling with stride 2 (NHWC)."""
  return nn.max_pool(x, (2, 2), strides=(2, 2))


class SelfAttention(nn.Module):
  """SAGAN's self-attention: x + gamma * o(attention of x over its pooled positions).

  For a (B, H, W, C) map: queries theta(x) (C/8 channels) at all H*W positions;
  keys phi(x) (C/8) and values g(x) (C/2) 2x2 max-pooled to H*W/4 positions;
  softmax over those positions of the query-key products, the weighted values
  mapped back to C channels by o, a 1x1 conv; gamma, a scalar, starts at 0.
  The 1x1 convs have no bias and are spectrally normalised with `spectral_norm`.
  Needs H and W even and C >= 8.
  """
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, return_weights: bool = False):
    """The attended map (B, H, W, C); with `return_weights` also the attention weights
    (B, H*W, H*W/4), each row summing to 1."""
    batch, height, width, channels = x.shape
    if channels < 8 or height % 2 or width % 2:
      raise ValueError(f"self-attention needs an even-sided map with >= 8 channels, got "
                       f"{x.shape[1:]}")
    sn = lambda layer, y: spectral_normalised(layer, y, self.spectral_norm, train)
    theta = sn(orthogonal_conv(channels // 8, 1, use_bias=False), x)
    theta = theta.reshape(batch, -1, channels // 8)
    phi = _max_pool(sn(orthogonal_conv(channels // 8, 1, use_bias=False), x))
    g = _max_pool(sn(orthogonal_conv(channels // 2, 1, use_bias=False), x))
    phi = phi.reshape(batch, -1, channels // 8)
    g = g.reshape(batch, -1, channels // 2)
    logits = jnp.einsum("bqc,bkc->bqk", theta, phi, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1)
    attended = jnp.einsum("bqk,bkc->bqc", weights.astype(g.dtype), g)
    attended = attended.reshape(batch, height, width, channels // 2)
    o = sn(orthogonal_conv(channels, 1, use_bias=False), attended)
    gamma = self.param("gamma", nn.initializers.zeros, ())
    out = x + gamma.astype(x.dtype) * o
    return (out, weights) if return_weights else out


class LinearConditionalBatchNorm(nn.Module):
  """BatchNorm (no affine of its own) scaled by 1 + A y and shifted by B y, A and B bias-free
  linear maps of the conditioning vectors y (batch, D); spectrally normalised with
  `spectral_norm`. Running statistics in `batch_stats`, as nn.BatchNorm's."""
  spectral_norm: bool = True
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array, *, train: bool) -> jax.Array:
    y = y.astype(x.dtype)
    linear = lambda name: spectral_normalised(
        nn.Dense(x.shape[-1], use_bias=False, kernel_init=ORTHOGONAL, name=name), y,
        self.spectral_norm, train)
    return conditional.normalise_then_modulate(x, 1.0 + linear("gain"), linear("bias"),
                                               train=train, momentum=self.momentum,
                                               epsilon=self.epsilon)


def _batch_norm(y: Optional[jax.Array], spectral_norm: bool, train: bool):
  """The BatchNorm of a G block: conditional on y, or plain (with affine) when y is None."""
  if y is None:
    return lambda x: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                  epsilon=1e-5)(x)
  return lambda x: LinearConditionalBatchNorm(spectral_norm)(x, y, train=train)


class GBlock(nn.Module):
  """G's residual up-block: (B, H, W, C) -> (B, 2H, 2W, features), its BatchNorms
  conditional on y (batch, D) when given."""
  features: int
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array], *, train: bool) -> jax.Array:
    sn = lambda layer, v: spectral_normalised(layer, v, self.spectral_norm, train)
    h = layers.upsample_nearest(nn.relu(_batch_norm(y, self.spectral_norm, train)(x)))
    h = sn(orthogonal_conv(self.features, 3), h)
    h = nn.relu(_batch_norm(y, self.spectral_norm, train)(h))
    h = sn(orthogonal_conv(self.features, 3), h)
    return h + sn(orthogonal_conv(self.features, 1), layers.upsample_nearest(x))


def latent_chunks(latent_dim: int, image_size: int, hierarchical: bool) -> Tuple[int, ...]:
  """The sizes z splits into: one for the 4x4 input and one per up-block with hierarchical z
  (ValueError unless latent_dim divides evenly), else (latent_dim,)."""
  if not hierarchical:
    return (latent_dim,)
  slots = resnet.num_blocks(image_size) + 1
  if latent_dim % slots:
    raise ValueError(
        f"model.latent_dim={latent_dim} does not split evenly into the {slots} chunks of "
        f"hierarchical z at {image_size}x{image_size} (one for the 4x4 input, one per up-block); "
        f"use a multiple of {slots} (e.g. {slots * max(1, round(latent_dim / slots))}) or "
        "model.hierarchical_z=False")
  return (latent_dim // slots,) * slots


def shared_embedding(labels: Optional[jax.Array], label_classes: Tuple[int, ...],
                     shared_dim: int, dtype, train: bool) -> Optional[jax.Array]:
  """BigGAN's shared class embedding, inside G's compact __call__: each head's label's
  learned vector of `shared_dim` (orthogonal start), concatenated (batch, heads *
  shared_dim) in `dtype`; None when unconditional."""
  if not label_classes:
    return None
  embedded = conditional.LabelEmbedding(label_classes, shared_dim, embedding_init=ORTHOGONAL,
                                        name="shared_embedding")(labels, train=train)
  return embedded.reshape(embedded.shape[0], -1).astype(dtype)


class Generator(nn.Module):
  """z (batch, latent_dim) [, labels (batch, heads)] -> images (batch, size, size, channels)
  in [-1, 1]; see the module docstring."""
  image_size: int = 64
  width: int = 64
  channels: int = 3
  spectral_norm: bool = True
  attention: int = 64  # side of the map after which self-attention runs (0: none)
  hierarchical_z: bool = True
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  shared_dim: int = 128  # conditional: size of each head's shared class embedding

  @nn.compact
  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None, *,
               train: bool) -> jax.Array:
    conditional.check_labels(labels, self.label_classes, "generator")
    widths = resnet.generator_widths(self.image_size, self.width)
    chunks = latent_chunks(z.shape[-1], self.image_size, self.hierarchical_z)
    if self.hierarchical_z:
      z_parts = jnp.split(z, len(chunks), axis=-1)
    else:
      z_parts = [z] + [None] * (len(widths) - 1)
    shared = shared_embedding(labels, self.label_classes, self.shared_dim, z.dtype, train)
    sn = lambda layer, y: spectral_normalised(layer, y, self.spectral_norm, train)
    x = sn(nn.Dense(4 * 4 * widths[0], kernel_init=ORTHOGONAL), z_parts[0])
    x = x.reshape(z.shape[0], 4, 4, widths[0])
    for j, features in enumerate(widths[1:], start=1):
      parts = [p for p in (z_parts[j], shared) if p is not None]
      y = jnp.concatenate(parts, axis=-1) if parts else None
      x = GBlock(features, self.spectral_norm)(x, y, train=train)
      if x.shape[1] == self.attention:
        x = SelfAttention(self.spectral_norm)(x, train=train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x))
    return jnp.tanh(sn(orthogonal_conv(self.channels, 3), x))


class Discriminator(nn.Module):
  """images (batch, size, size, channels) [, labels] -> logits (batch,); the SNGAN ResNet D
  with BigGAN's wide blocks, self-attention and projection head."""
  image_size: int = 64
  width: int = 64
  spectral_norm: bool = True
  attention: int = 64  # side of the map after which self-attention runs (0: none)
  label_classes: Tuple[int, ...] = ()
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan
  init_scheme: str = "orthogonal"  # the blocks' and embeddings' initialisation: a D_INITS key

  @nn.compact
  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool,
               return_aux: bool = False):
    """Logits (batch,); with `return_aux` (AC-GAN) also {head: class logits}."""
    layers.check_image_size(x, self.image_size)
    widths = resnet.discriminator_widths(self.image_size, self.width)
    sn, init = self.spectral_norm, D_INITS[self.init_scheme]
    blocks = [resnet.OptimisedBlock(widths[0], spectral_norm=sn, kernel_init=init)]
    blocks += [resnet.DownBlock(features, spectral_norm=sn, wide=True, kernel_init=init)
               for features in widths[1:-1]]
    blocks.append(resnet.DownBlock(widths[-1], downsample=False, spectral_norm=sn, wide=True,
                                   kernel_init=init))
    attended = False
    for block in blocks:
      x = block(x, train=train)
      if x.shape[1] == self.attention and not attended:
        x = SelfAttention(self.spectral_norm)(x, train=train)
        attended = True
    return sum_pooled_output(x, labels, self.label_classes, self.d_cond, self.spectral_norm,
                             train, return_aux, init)


def sum_pooled_output(x: jax.Array, labels: Optional[jax.Array], label_classes: Tuple[int, ...],
                      d_cond: str, spectral_norm: bool, train: bool, return_aux: bool,
                      init: Optional[nn.initializers.Initializer] = ORTHOGONAL):
  """BigGAN's D head on its last feature map x (batch, H, W, C), inside a compact __call__:
  ReLU, global sum pooling, a Dense logit, plus the projection term (and with `return_aux`
  the AC-GAN class logits) when conditional; the class heads start from `init`."""
  phi = jnp.sum(nn.relu(x), axis=(1, 2))
  logit = spectral_normalised(nn.Dense(1, kernel_init=ORTHOGONAL), phi, spectral_norm, train)
  logit = logit.reshape(logit.shape[0])
  if not label_classes and not return_aux and labels is None:
    return logit
  return conditional.discriminator_output(logit, phi, labels, label_classes, d_cond,
                                          spectral_norm, train, return_aux, kernel_init=init)


def checked_attention(attention: int, image_size: int) -> int:
  """model.attention, once checked to be 0 (none) or a side G's blocks produce (ValueError
  otherwise, or for an unsupported image size)."""
  sides = [4 * 2**j for j in range(1, resnet.num_blocks(image_size) + 1)]
  if attention and attention not in sides:
    raise ValueError(f"model.attention={attention}: choose 0 (none) or a side G's blocks "
                     f"produce: {', '.join(map(str, sides))}")
  return attention


def conditional_fields(model_config, label_classes: Tuple[int, ...]) -> Tuple[dict, dict]:
  """The conditional fields of BigGAN's G (label classes, shared_dim) and D (label classes,
  d_cond, checked); both empty when unconditional."""
  if not label_classes:
    return {}, {}
  d_cond = model_config.get("d_cond", "projection")
  conditional.parse_d_cond(d_cond)
  return (dict(label_classes=tuple(label_classes), shared_dim=model_config.get("shared_dim", 128)),
          dict(label_classes=tuple(label_classes), d_cond=d_cond))


def build_biggan(model_config, example_shape, label_classes: Tuple[int, ...] = ()):
  """(Generator, Discriminator) of BigGAN for square images (side a power of two >= 8).

  Reads model_config.g_width, d_width, latent_dim and, with .get: attention
  (default 64), hierarchical_z (True), shared_dim (128), g_spectral_norm and
  d_spectral_norm (True), d_cond (projection), d_init (orthogonal).
  """
  image_size, channels = layers.square_images(example_shape, "BigGAN")
  attention = checked_attention(model_config.get("attention", 64), image_size)
  hierarchical = model_config.get("hierarchical_z", True)
  latent_chunks(model_config.latent_dim, image_size, hierarchical)  # fail early
  d_init = model_config.get("d_init", "orthogonal")
  if d_init not in D_INITS:
    raise ValueError(f"unknown model.d_init {d_init!r}; choose from: {', '.join(D_INITS)}")
  cond_g, cond_d = conditional_fields(model_config, label_classes)
  return (Generator(image_size=image_size, width=model_config.g_width, channels=channels,
                    spectral_norm=model_config.get("g_spectral_norm", True), attention=attention,
                    hierarchical_z=hierarchical, **cond_g),
          Discriminator(image_size=image_size, width=model_config.d_width,
                        spectral_norm=model_config.get("d_spectral_norm", True),
                        attention=attention, init_scheme=d_init, **cond_d))
