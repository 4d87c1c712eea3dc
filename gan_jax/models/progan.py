"""Progressive GAN (Karras et al., 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation") generator and discriminator for square images (side a power
of two >= 8).

Growing: both networks hold every resolution's layers from the start and read the
growth level l (a float in [0, L], L = log2(size / 4)) from their `batch_stats`
(`growth_level`, which the train step sets from the iteration count:
gan_jax/step.py's Growth). Level k means resolution 4 * 2^k; between k - 1 and k the
new resolution fades in with alpha = l - (k - 1):
  * G computes its blocks up to resolution 4 * 2^k and outputs
    (1 - alpha) * upsample(toRGB_{k-1}(h_{k-1})) + alpha * toRGB_k(h_k);
  * D average-pools its input to 4 * 2^k and starts from
    (1 - alpha) * fromRGB_{k-1}(pool(x)) + alpha * block_k(fromRGB_k(x)).
Data and samples keep the full size throughout: G's image is upsampled to it
(nearest neighbour, so every 2^(L-k) square block is one pixel of the
low-resolution image) and D pools any input down to the level's resolution, so
real images are seen at the level's resolution (their block means), and nothing
outside the models (data pipeline, metrics, checkpoints) knows about growing. A
consequence: gradient penalties measure grad_x D on the full-size images, whose
norm is 2^(L-k) times smaller than on the pooled ones, so WGAN-GP's target
||grad|| = 1 is a Lipschitz constant in full-size pixel space at every level.
Which resolution runs is a `lax.switch` on k (model.branching), so an iteration at a
low level computes only the low-resolution layers; on the CPU, where XLA runs
convolutions inside a conditional far slower, every resolution runs and the level's
output is selected (resolve_branching).

Architecture (the paper's, with its channel schedule as in stylegan2.py):
  * G: z normalised by its RMS (pixel norm); dense -> 4x4, conv3x3; per higher
    resolution a nearest x2 upsample and two conv3x3; leaky ReLU 0.2 (x sqrt 2) and
    pixel norm after every layer; toRGB (1x1 conv, linear) per resolution.
  * D: fromRGB (1x1 conv, leaky ReLU) per resolution; per resolution down to 8x8
    conv3x3, conv3x3 and 2x2 average pooling; at 4x4 minibatch standard deviation,
    conv3x3, dense, dense -> 1 logit. No normalisation.
  * Equalised learning rate everywhere (stylegan2.EqualConv / EqualDense).
Not implemented: the paper's batch size per resolution (one batch size throughout),
its separate image counts per resolution (one schedule, Growth's stable_iters and
fade_iters).

Class-conditional (config.data.labels): G concatenates the labels' learned embeddings to
z; D has a projection (or AC-GAN) head on its last hidden features at every level.
"""

import functools
from typing import Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import branching
from gan_jax.models import conditional, layers
from gan_jax.models.stylegan2 import (EqualConv, EqualDense, channels_at, lrelu,
                                      minibatch_stddev)
from gan_jax.step import GROWTH_LEVEL

BRANCHINGS = ("switch", "select")  # model.branching (resolve_branching)


def num_levels(image_size: int) -> int:
  """L: the growth level of full resolution (image_size = 4 * 2^L, a power of two >= 8)."""
  return layers.num_doublings(image_size, "ProGAN")


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """x divided by the RMS of its last axis (per sample and pixel; the RMS in float32)."""
  wide = x.astype(jnp.float32)
  return (wide * jax.lax.rsqrt(jnp.mean(jnp.square(wide), axis=-1, keepdims=True) + eps)
          ).astype(x.dtype)


def stage_and_alpha(level: jax.Array, max_level: int) -> Tuple[jax.Array, jax.Array]:
  """(k, alpha) of a growth level: k = ceil(level), the highest resolution in use, and
  alpha in [0, 1] the weight of that resolution's new layers (1 for a whole level)."""
  level = jnp.clip(jnp.asarray(level, jnp.float32), 0.0, max_level)
  stage = jnp.ceil(level).astype(jnp.int32)
  return stage, jnp.clip(level - (stage - 1).astype(jnp.float32), 0.0, 1.0)


def resolve_branching(name: str, backend: Optional[str] = None) -> str:
  """How the networks pick their resolution (model.branching): 'switch' (lax.switch: only
  the level's layers run), 'select' (every resolution runs, the level's output is
  selected) or 'auto': select on the CPU, whose XLA backend runs convolutions inside a
  conditional 10-70x slower (measured: a 32x32 ProGAN step, batch 32, 0.33 s at 4x4 and
  23 s at 32x32 with switch, 0.76 s at every level with select), switch elsewhere."""
  return branching.resolve("model.branching", name, BRANCHINGS, backend)


class _Grown(nn.Module):
  """What both networks share: the growth level from batch_stats and the choice among
  resolutions (subclasses define `_at(x, alpha, stage)` for one static stage)."""
  image_size: int = 64
  branching: str = "auto"  # resolve_branching
  width: int = 64  # channels at full resolution (channels_at)
  max_channels: int = 512

  def _channels(self, k: int) -> int:
    """The channels of resolution 4 * 2**k."""
    return channels_at(4 * 2**k, self.image_size, self.width, self.max_channels)

  @property
  def max_level(self) -> int:
    """L, the growth level of full resolution (the train step's Growth reads it)."""
    return num_levels(self.image_size)

  def _declare_level(self):
    """Called by setup: the growth level variable (None when applied without batch_stats)."""
    if (self.has_variable("batch_stats", GROWTH_LEVEL)
        or self.is_mutable_collection("batch_stats")):
      self.level = self.variable("batch_stats", GROWTH_LEVEL,
                                 lambda: jnp.zeros((), jnp.float32))
    else:
      self.level = None

  def _level(self) -> jax.Array:
    if self.level is None:
      raise ValueError(f"{type(self).__name__} of progan reads its growth level from "
                       f"batch_stats/{GROWTH_LEVEL}: apply it with its batch_stats")
    return self.level.value

  def _at_level(self, x: jax.Array) -> jax.Array:
    """The network on x at its growth level (_at for the level's stage and fade)."""
    stage, alpha = stage_and_alpha(self._level(), self.max_level)
    alpha = alpha.astype(x.dtype)
    branches = [functools.partial(type(self)._at, stage=k) for k in range(self.max_level + 1)]
    if self.is_initializing():  # every branch's layers exist from the start
      for branch in branches:
        branch(self, x, alpha)
    if resolve_branching(self.branching) == "select":
      out = branches[0](self, x, alpha)
      for k, branch in enumerate(branches[1:], 1):
        out = jax.tree.map(functools.partial(jnp.where, stage == k), branch(self, x, alpha), out)
      return out
    return nn.switch(stage, branches, self, x, alpha)


class Generator(_Grown):
  """z (batch, latent_dim) -> images (batch, size, size, channels) at the growth level's
  resolution, upsampled to full size (module docstring). `train` is accepted for the
  common interface and unused. Conditional (`label_classes`): called with labels
  (batch, heads) after z, whose learned embeddings (`embed_dim` each) are concatenated
  to z before its pixel norm (the paper's code concatenates one-hot labels there)."""
  channels: int = 3
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  embed_dim: int = 32  # conditional: embedding size of each label

  def setup(self):
    top = self.max_level
    ch = self._channels
    if self.label_classes:
      self.label_embedding = conditional.LabelEmbedding(self.label_classes, self.embed_dim)
    self.dense = EqualDense(16 * ch(0))
    self.conv4 = EqualConv(ch(0), 3)
    self.conv_up = [EqualConv(ch(k), 3) for k in range(1, top + 1)]
    self.conv = [EqualConv(ch(k), 3) for k in range(1, top + 1)]
    self.to_rgb = [EqualConv(self.channels, 1) for _ in range(top + 1)]
    self._declare_level()

  def _at(self, z: jax.Array, alpha: jax.Array, stage: int) -> jax.Array:
    n = z.shape[0]
    x = lrelu(self.dense(pixel_norm(z)))
    x = pixel_norm(x.reshape(n, 4, 4, -1))
    x = pixel_norm(lrelu(self.conv4(x)))
    for k in range(1, stage + 1):
      previous = x
      x = pixel_norm(lrelu(self.conv_up[k - 1](layers.upsample_nearest(x, 2))))
      x = pixel_norm(lrelu(self.conv[k - 1](x)))
    rgb = self.to_rgb[stage](x)
    if stage > 0:
      faded = layers.upsample_nearest(self.to_rgb[stage - 1](previous), 2)
      rgb = faded + alpha * (rgb - faded)
    return layers.upsample_nearest(rgb, 2 ** (self.max_level - stage))

  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None, *,
               train: bool = False) -> jax.Array:
    z = conditional.condition_latent(z, labels, self.label_classes, self.embed_dim, train,
                                     embedding=getattr(self, "label_embedding", None))
    return self._at_level(z)


class Discriminator(_Grown):
  """images (batch, size, size, channels) -> logits (batch,), seen at the growth level's
  resolution (module docstring). `train` is accepted for the common interface and unused.
  Conditional (`label_classes`): called with labels (batch, heads), the projection and/or
  AC-GAN heads of models/conditional.py (`d_cond`) read phi, the output of the last hidden
  dense layer at every level (the paper's code gives D label outputs, AC-GAN style)."""
  mbstd_group: int = 4
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan

  def setup(self):
    top = self.max_level
    ch = self._channels
    self.from_rgb = [EqualConv(ch(k), 1) for k in range(top + 1)]
    self.conv = [EqualConv(ch(k), 3) for k in range(1, top + 1)]
    self.conv_down = [EqualConv(ch(k - 1), 3) for k in range(1, top + 1)]
    self.conv4 = EqualConv(ch(0), 3)
    self.dense = EqualDense(ch(0))
    self.out = EqualDense(1)
    if self.label_classes:
      projection, acgan = conditional.parse_d_cond(self.d_cond)
      self.conditional = conditional.ConditionalHead(self.label_classes, projection, acgan)
    self._declare_level()

  def _at(self, x: jax.Array, alpha: jax.Array, stage: int) -> jax.Array:
    n = x.shape[0]
    x = layers.average_pool(x, 2 ** (self.max_level - stage))
    h = lrelu(self.from_rgb[stage](x))
    for k in range(stage, 0, -1):
      h = lrelu(self.conv[k - 1](h))
      h = layers.average_pool(lrelu(self.conv_down[k - 1](h)), 2)
      if k == stage:
        faded = lrelu(self.from_rgb[stage - 1](layers.average_pool(x, 2)))
        h = faded + alpha * (h - faded)
    h = minibatch_stddev(h, self.mbstd_group)
    h = lrelu(self.conv4(h))
    h = lrelu(self.dense(h.reshape(n, -1)))
    logit = self.out(h).reshape(n)
    return (logit, h) if self.label_classes else logit

  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool = False,
               return_aux: bool = False):
    layers.check_image_size(x, self.image_size)
    out = self._at_level(x)
    logit, phi = out if self.label_classes else (out, None)
    return conditional.discriminator_output(logit, phi, labels, self.label_classes, self.d_cond,
                                            False, train, return_aux,
                                            head=getattr(self, "conditional", None))


def build_progan(model_config, example_shape: Sequence[int],
                 label_classes: Tuple[int, ...] = ()) -> Tuple[nn.Module, nn.Module]:
  """Progressive GAN (generator, discriminator) for square images whose side is a power of
  two >= 8; they grow by the train step's Growth (config.model.growth). Class-conditional
  for non-empty `label_classes` (model.label_embed_dim, model.d_cond)."""
  image_size, channels = layers.square_images(example_shape, "ProGAN")
  num_levels(image_size)  # fail early on an unsupported size
  for field in ("g_spectral_norm", "d_spectral_norm"):
    if model_config.get(field, False):
      raise ValueError(f"model.{field}: ProGAN's layers have equalised learning rates and no "
                       "spectral norm; use constraint.d=spectral_norm for a spectrally "
                       "normalised D")
  max_channels = model_config.get("max_channels", 512)
  mbstd_group = model_config.get("mbstd_group", 4)
  if max_channels < 1 or mbstd_group < 1:
    raise ValueError(f"model.max_channels and model.mbstd_group must be >= 1, got "
                     f"{max_channels}, {mbstd_group}")
  branching = model_config.get("branching", "auto")
  resolve_branching(branching)  # fail early on an unknown name
  cond = conditional.conditional_options(model_config, label_classes)
  return (Generator(image_size=image_size, width=model_config.g_width, channels=channels,
                    max_channels=max_channels, branching=branching, **cond["g"]),
          Discriminator(image_size=image_size, width=model_config.d_width,
                        max_channels=max_channels, mbstd_group=mbstd_group,
                        branching=branching, **cond["d"]))
