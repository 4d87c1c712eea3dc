"""StyleGAN2 (Karras et al., 2020, "Analyzing and Improving the Image Quality of
StyleGAN") generator and discriminator for square images (side a power of two >= 8).

Generator = mapping network + synthesis network ("skip" architecture):
  * mapping: z normalised by its RMS (pixel norm), then `mapping_layers` equalised
    dense layers (learning-rate multiplier 0.01, leaky ReLU 0.2 with gain sqrt(2))
    -> w of size `w_dim`.
  * synthesis: a learned 4x4 constant; one modulated 3x3 conv at 4x4 (as in the
    paper), then two per higher resolution, the first of which upsamples x2.
    Each conv: style = affine(w) (bias initialised to 1), weight modulated by the
    style and demodulated, per-pixel noise times a learned per-layer strength
    (initialised to 0), bias, leaky ReLU 0.2 * sqrt(2). A toRGB (modulated 1x1
    conv, no demodulation, with bias) at every resolution is added to the x2
    upsampled RGB image of the previous resolution. No tanh at the output.
  * upsampling: a separable bilinear x2 upsample (the [1, 3, 3, 1] / 4 filter with
    the edge row/column repeated) followed by an ordinary 3x3 modulated conv,
    instead of the paper's transposed conv followed by the same FIR filter. The
    RGB skip path uses the same bilinear upsample (the paper's upfirdn2d with
    [1, 3, 3, 1] is this filter, up to the border handling).

Noise inputs: the noise image of each layer comes from `self.make_rng('noise')`
when the caller passes `rngs={'noise': key}` to apply (StyleGAN2's
noise_mode='random', fresh per sample and layer); without that rng each layer
uses a fixed noise image derived deterministically from the layer's index
(noise_mode='const'), shared over the batch. With model.noise='random' (configs/
stylegan2.py) the train step passes a fresh 'noise' rng to every G call
(Generator.train_rngs; key streams in gan_jax/step.py); sampling and evaluation
use the fixed images (a deterministic function of z) unless given a key.

Training pieces (gan_jax/step.py applies them; config fields in configs/stylegan2.py):
  * style mixing regularisation (model.style_mixing): per sample, two latents
    with a random crossover slot (Generator's z2, mix_layer);
  * the tracked average w (batch_stats/w_avg, an EMA with decay model.w_avg_decay
    = 0.995 of the batch mean of mapping(z), updated by train-mode calls with
    mutable batch_stats) and the truncation trick (truncation_psi, towards it or,
    conditional, towards each label's own average w: label_w_avg and
    truncation_center; see gan_jax/sampling.py's generate and label_w_centers);
  * path-length regularisation (config.g_penalty.path_length), lazily every N
    iterations, through Generator.ws and Generator.synthesize; its running mean
    lives in batch_stats/pl_mean.

Discriminator ("resnet" architecture): fromRGB (1x1 conv) at the input resolution;
per resolution down to 8x8 a residual block: conv3x3, conv3x3 then 2x2 average
pool, plus a skip path (2x2 average pool then 1x1 conv without bias), summed and
scaled by 1/sqrt(2). At 4x4: minibatch standard deviation (group size
min(4, batch), one extra channel), conv3x3, dense, dense -> 1 logit. Average
pooling stands in for the paper's [1, 3, 3, 1] FIR downsampling.

Equalised learning rate everywhere: weights are stored as N(0, 1 / lr_mul) and
scaled at runtime by lr_mul / sqrt(fan_in); biases are stored as
bias_init / lr_mul and scaled by lr_mul.

Channel schedule: at resolution r of an N x N model, channels =
min(width * N / r, max_channels): `width` channels at full resolution, doubling
per halving of the resolution, capped (G uses g_width, D uses d_width).

Config fields read by build_stylegan2 (model.*):
  g_width, d_width, latent_dim   (existing)
  mapping_layers = 8     depth of the mapping network
  w_dim = 0              size of w (0: latent_dim)
  max_channels = 512     channel cap of both networks
  mbstd_group = 4        minibatch-stddev group size (capped by the batch)
  noise = 'const'        training noise: random | const ('const' when absent, so older
                         configs train as before; configs/stylegan2.py sets random)
  w_avg_decay = 0.995    EMA decay of the tracked w average
  style_mixing = 0.0     mixing probability (validated here, applied by the step)
  label_embed_dim = 0    conditional: each label's embedding size in the mapping network
                         (0: w_dim)
  d_cond = 'projection'  conditional: D's head, projection | acgan | projection+acgan

Class-conditional (config.data.labels; build_stylegan2's label_classes), as
StyleGAN2-ADA: G's mapping network reads [pixelnorm(z), pixelnorm(sum of the
labels' embeddings)], and D gets a projection (or AC-GAN) head on its last hidden
features (models/conditional.py, model.d_cond). Style mixing and path-length
regularisation map both latents with the sample's own labels.

Mixed precision: config.model.dtype=bfloat16 runs G (noise, mixing and path length
included) in bfloat16 through the step's casts; w_avg and pl_mean stay float32.

Not implemented here: conv clamping (StyleGAN2-ADA's conv_clamp for fp16), the
paper's separate G regularisation pass (path length is added to the ordinary G
update on its iterations), the truncation cutoff (psi applies to every slot), and
lazy R1 is not special here (use penalty r1 with `every`).
"""

import math
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models import conditional, layers
from gan_jax.registry import check_choice

_LRELU_GAIN = math.sqrt(2.0)


def num_doublings(image_size: int) -> int:
  """How many x2 resolution steps lie between 4x4 and `image_size` (a power of 2 >= 8)."""
  return layers.num_doublings(image_size, "StyleGAN2")


def channels_at(resolution: int, image_size: int, width: int, max_channels: int) -> int:
  """Channels at `resolution`: width * image_size / resolution, capped at max_channels."""
  return min(width * (image_size // resolution), max_channels)


def lrelu(x: jax.Array) -> jax.Array:
  """Leaky ReLU (slope 0.2) times sqrt(2), which keeps unit-variance activations."""
  return nn.leaky_relu(x, 0.2) * _LRELU_GAIN


def upsample_matrix(n: int) -> np.ndarray:
  """(2n, n) bilinear x2 interpolation: row 2i = 0.25 x[i-1] + 0.75 x[i], row 2i+1 =
  0.75 x[i] + 0.25 x[i+1], with x[-1] = x[0] and x[n] = x[n-1] (edges repeated)."""
  m = np.zeros((2 * n, n), np.float32)
  for i in range(n):
    m[2 * i, max(i - 1, 0)] += 0.25
    m[2 * i, i] += 0.75
    m[2 * i + 1, i] += 0.75
    m[2 * i + 1, min(i + 1, n - 1)] += 0.25
  return m


def upsample2x(x: jax.Array) -> jax.Array:
  """x2 bilinear upsampling of NHWC `x` (separable [1, 3, 3, 1] / 4 filter, edges repeated).

  Written as two small matrix products with constant interpolation matrices,
  which XLA compiles much faster than the equivalent pads, slices and interleaves.
  """
  uh = jnp.asarray(upsample_matrix(x.shape[1]), x.dtype)
  uw = jnp.asarray(upsample_matrix(x.shape[2]), x.dtype)
  return jnp.einsum("ih,nhwc,jw->nijc", uh, x, uw)


def downsample2x(x: jax.Array) -> jax.Array:
  """2x2 average pooling of NHWC `x` (r3gan.filtered_downsample2x is the [1, 3, 3, 1] one)."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def modulated_conv(x: jax.Array, weight: jax.Array, styles: jax.Array, demodulate: bool = True,
                   eps: float = 1e-8, padding: str = "SAME",
                   impl: str = "grouped") -> jax.Array:
  """StyleGAN2's modulated convolution of NHWC `x` (N, H, W, I).

  `weight` (k, k, I, O) is the (already equalised) kernel and `styles` (N, I) the
  per-sample input-channel scales. Per sample n the kernel is
  w'[.., i, o] = weight[.., i, o] * styles[n, i]; with `demodulate` it is then
  divided by sqrt(sum_{kh, kw, i} w'^2 + eps) per output channel o. Returns
  (N, H', W', O).

  impl='grouped' builds the N modulated kernels and runs one grouped convolution
  (feature_group_count=N); impl='scaled' scales the activations by the style,
  runs one shared convolution and scales the outputs by the demodulation
  coefficients (mathematically the same, cheaper for training batches).
  """
  n, _, _, in_ch = x.shape
  kh, kw, w_in, out_ch = weight.shape
  if w_in != in_ch or styles.shape != (n, in_ch):
    raise ValueError(f"modulated_conv: x {x.shape}, weight {weight.shape} and styles "
                     f"{styles.shape} disagree")
  if demodulate:
    # sum_{kh,kw,i} (weight * s_i)^2 = sum_i s_i^2 * sum_{kh,kw} weight^2
    coef = jax.lax.rsqrt(jnp.square(styles) @ jnp.square(weight).sum(axis=(0, 1)) + eps)
  if impl == "scaled":
    y = jax.lax.conv_general_dilated(
        x * styles[:, None, None, :], weight, (1, 1), padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y * coef[:, None, None, :] if demodulate else y
  if impl != "grouped":
    raise ValueError(f"unknown modulated_conv impl {impl!r}; choose grouped or scaled")
  w = weight[None] * styles[:, None, None, :, None]  # (N, k, k, I, O)
  if demodulate:
    w = w * coef[:, None, None, None, :]
  w = w.transpose(1, 2, 3, 0, 4).reshape(kh, kw, in_ch, n * out_ch)
  h, wd = x.shape[1], x.shape[2]
  xg = x.transpose(1, 2, 0, 3).reshape(1, h, wd, n * in_ch)
  y = jax.lax.conv_general_dilated(
      xg, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=n)
  _, ho, wo, _ = y.shape
  return y.reshape(ho, wo, n, out_ch).transpose(2, 0, 1, 3)


def minibatch_stddev(x: jax.Array, group_size: int = 4, num_channels: int = 1,
                     eps: float = 1e-8) -> jax.Array:
  """x (N, H, W, C) with `num_channels` minibatch-stddev feature maps appended.

  Samples are split into groups of G = min(group_size, N) (G is lowered to the
  largest divisor of N when N is not a multiple); sample i belongs to group
  i mod (N / G). For each group and each of the `num_channels` channel slices
  the statistic is the standard deviation over the group (sqrt(var + eps)),
  averaged over the slice's channels and all pixels; it is broadcast over the
  group's samples and pixels and concatenated as extra channels.
  """
  n, h, w, c = x.shape
  g = min(group_size, n)
  while n % g:
    g -= 1
  f = num_channels
  if c % f:
    raise ValueError(f"minibatch_stddev: {c} channels do not split into {f} slices")
  y = x.reshape(g, n // g, h, w, f, c // f)
  y = y - y.mean(axis=0)
  std = jnp.sqrt(jnp.square(y).mean(axis=0) + eps)  # (N/G, H, W, F, C/F)
  stat = std.mean(axis=(1, 2, 4))  # (N/G, F)
  stat = jnp.tile(stat, (g, 1))  # row i -> group i mod (N/G)
  stat = jnp.broadcast_to(stat[:, None, None, :], (n, h, w, f))
  return jnp.concatenate([x, stat.astype(x.dtype)], axis=-1)


class EqualDense(nn.Module):
  """Dense layer with equalised learning rate: y = x @ (K * lr_mul / sqrt(fan_in)) + b * lr_mul.

  K ~ N(0, 1 / lr_mul^2) and b = bias_init / lr_mul at initialisation, so the
  effective weights start as N(0, 1 / fan_in) and the effective bias as bias_init.
  """
  features: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.normal(1.0 / self.lr_mul),
                        (fan_in, self.features))
    y = x @ (kernel * (self.lr_mul / math.sqrt(fan_in)))
    if self.use_bias:
      bias = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_mul),
                        (self.features,))
      y = y + bias * self.lr_mul
    return y


class EqualConv(nn.Module):
  """k x k convolution ('SAME' padding, stride 1) with equalised learning rate: kernel
  K ~ N(0, 1) scaled at runtime by 1 / sqrt(k * k * in_channels); bias starts at 0."""
  features: int
  kernel_size: int = 3
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, in_ch = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, in_ch, self.features))
    y = jax.lax.conv_general_dilated(
        x, kernel * (1.0 / math.sqrt(k * k * in_ch)), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class StyledConv(nn.Module):
  """One synthesis layer: [x2 bilinear upsample], modulated+demodulated k x k conv
  styled by affine(w), noise * learned strength, bias, leaky ReLU * sqrt(2).

  Noise: from make_rng('noise') when the caller provides that rng, else a fixed
  image derived from `noise_seed` (constant over calls and over the batch).
  """
  features: int
  kernel_size: int = 3
  upsample: bool = False
  noise_seed: int = 0
  impl: str = "scaled"

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    in_ch, k = x.shape[-1], self.kernel_size
    styles = EqualDense(in_ch, bias_init=1.0, name="affine")(w)
    weight = self.param("kernel", nn.initializers.normal(1.0), (k, k, in_ch, self.features))
    if self.upsample:
      x = upsample2x(x)
    x = modulated_conv(x, weight * (1.0 / math.sqrt(k * k * in_ch)), styles,
                       demodulate=True, impl=self.impl)
    n, h, wd, _ = x.shape
    strength = self.param("noise_strength", nn.initializers.zeros, ())
    if self.has_rng("noise"):
      noise = jax.random.normal(self.make_rng("noise"), (n, h, wd, 1), x.dtype)
    else:
      noise = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(0), self.noise_seed),
                                (1, h, wd, 1), x.dtype)
    x = x + noise * strength
    x = x + self.param("bias", nn.initializers.zeros, (self.features,))
    return lrelu(x)


class ToRGB(nn.Module):
  """Modulated 1x1 conv without demodulation (style = affine(w) / sqrt(in_channels)), plus bias."""
  channels: int = 3
  impl: str = "scaled"

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    in_ch = x.shape[-1]
    styles = EqualDense(in_ch, bias_init=1.0, name="affine")(w) * (1.0 / math.sqrt(in_ch))
    weight = self.param("kernel", nn.initializers.normal(1.0), (1, 1, in_ch, self.channels))
    y = modulated_conv(x, weight, styles, demodulate=False, impl=self.impl)
    return y + self.param("bias", nn.initializers.zeros, (self.channels,))


def normalise_2nd_moment(x: jax.Array) -> jax.Array:
  """x / RMS(x) over the last axis (StyleGAN's pixel norm of z)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + 1e-8)


class MappingNetwork(nn.Module):
  """z (batch, latent_dim) -> w (batch, w_dim): pixel norm, then `num_layers` equalised
  dense layers (lr multiplier `lr_mul`) each followed by leaky ReLU 0.2 * sqrt(2).

  Conditional (`label_classes` non-empty, labels (batch, heads)): the sum over heads of a
  learned `embed_dim`-vector per class, pixel-normed like z and concatenated to it before
  the first layer (StyleGAN2-ADA's conditioning). The embeddings start as N(0, 1), the
  scale of the equalised weights, since the normalisation removes their scale anyway.
  """
  w_dim: int
  num_layers: int = 8
  lr_mul: float = 0.01
  label_classes: Tuple[int, ...] = ()
  embed_dim: int = 0  # size of the label embedding (0: w_dim)

  @nn.compact
  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None) -> jax.Array:
    conditional.check_labels(labels, self.label_classes, "generator")
    x = normalise_2nd_moment(z)
    if self.label_classes:
      embedded = conditional.LabelEmbedding(
          self.label_classes, self.embed_dim or self.w_dim,
          embedding_init=nn.initializers.normal(1.0), name="label_embedding")(labels, train=False)
      x = jnp.concatenate([x, normalise_2nd_moment(jnp.sum(embedded, axis=1)).astype(x.dtype)],
                          axis=-1)
    for i in range(self.num_layers):
      x = lrelu(EqualDense(self.w_dim, lr_mul=self.lr_mul, name=f"dense_{i}")(x))
    return x


class SynthesisNetwork(nn.Module):
  """ws (batch, num_ws, w_dim) -> images (batch, size, size, channels), skip architecture.

  w index order: [conv 4x4, rgb 4x4, conv0 8x8, conv1 8x8, rgb 8x8, ...]; i.e.
  num_ws = 2 + 3 * num_doublings(image_size).
  """
  image_size: int = 64
  width: int = 64
  channels: int = 3
  max_channels: int = 512
  impl: str = "scaled"

  @staticmethod
  def num_ws(image_size: int) -> int:
    """Number of w vectors the synthesis network consumes at `image_size`."""
    return 2 + 3 * num_doublings(image_size)

  @nn.compact
  def __call__(self, ws: jax.Array) -> jax.Array:
    n_dbl = num_doublings(self.image_size)
    ch = lambda r: channels_at(r, self.image_size, self.width, self.max_channels)
    batch = ws.shape[0]
    const = self.param("const", nn.initializers.normal(1.0), (4, 4, ch(4)))
    x = jnp.broadcast_to(const[None], (batch, 4, 4, ch(4)))
    x = StyledConv(ch(4), noise_seed=0, impl=self.impl, name="b4_conv")(x, ws[:, 0])
    img = ToRGB(self.channels, impl=self.impl, name="b4_torgb")(x, ws[:, 1])
    idx, layer = 2, 1
    for i in range(1, n_dbl + 1):
      r = 4 * 2**i
      x = StyledConv(ch(r), upsample=True, noise_seed=layer, impl=self.impl,
                     name=f"b{r}_conv0")(x, ws[:, idx])
      x = StyledConv(ch(r), noise_seed=layer + 1, impl=self.impl,
                     name=f"b{r}_conv1")(x, ws[:, idx + 1])
      img = upsample2x(img) + ToRGB(self.channels, impl=self.impl,
                                    name=f"b{r}_torgb")(x, ws[:, idx + 2])
      idx, layer = idx + 3, layer + 2
    return img


NOISE_MODES = ("random", "const")


class Generator(nn.Module):
  """z (batch, latent_dim) -> images (batch, size, size, channels), roughly in [-1, 1].

  __call__(z) = synthesize(ws(z)); a conditional generator (`label_classes` non-empty)
  takes labels (batch, heads) after z, in both, and maps (z, labels) to w (MappingNetwork).
  Options of `ws` (and so of __call__):
    * train: update the tracked average w (`batch_stats/w_avg`, the EMA
      w_avg <- mean_batch(mapping(z)) + w_avg_decay * (w_avg - mean), as
      StyleGAN2's w_avg) when the caller makes batch_stats mutable.
    * z2, mix_layer: style mixing; w = mapping(z) drives the first `mix_layer`
      w slots (see SynthesisNetwork) and mapping(z2) the rest. mix_layer is an
      int, a traced int scalar or an int vector (batch,) (one crossover per
      sample; num_ws: no mixing for that sample).
    * truncation_psi: the truncation trick, w <- c + psi * (w - c) (for both
      latents), c the tracked w_avg; 1.0 (the default) leaves w untouched. A
      conditional G tracks one w_avg over all labels (StyleGAN2-ADA's), so truncation
      pulls every label towards it; `truncation_center` (batch, w_dim) gives each
      sample its own c instead (e.g. `label_w_avg`: its label's average w).
  Noise: see the module docstring (pass rngs={'noise': key} for fresh noise);
  `train_rngs` names the rngs the train step should pass ('noise' with
  noise_mode='random', none with 'const').

  batch_stats holds w_avg and `pl_mean` (the path-length regulariser's running
  mean of path lengths, which the train step updates; see gan_jax/step.py).
  Applied with params only (no batch_stats), the generator still runs but has
  no w average: truncation then raises.
  """
  image_size: int = 64
  width: int = 64
  channels: int = 3
  w_dim: int = 128
  mapping_layers: int = 8
  max_channels: int = 512
  impl: str = "scaled"
  noise_mode: str = "random"  # the train step's noise: random (fresh rng) | const
  w_avg_decay: float = 0.995
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  embed_dim: int = 0  # conditional: label embedding size in the mapping network (0: w_dim)

  @property
  def num_ws(self) -> int:
    """Number of w slots of the synthesis network (crossover points for style mixing)."""
    return SynthesisNetwork.num_ws(self.image_size)

  @property
  def train_rngs(self) -> Tuple[str, ...]:
    """The rng streams the train step passes to apply (gan_jax/step.py's g_rngs)."""
    return ("noise",) if self.noise_mode == "random" else ()

  def setup(self):
    self.mapping = MappingNetwork(self.w_dim, self.mapping_layers,
                                  label_classes=self.label_classes, embed_dim=self.embed_dim)
    self.synthesis = SynthesisNetwork(self.image_size, self.width, self.channels,
                                      self.max_channels, self.impl)
    if self.has_variable("batch_stats", "w_avg") or self.is_mutable_collection("batch_stats"):
      self.w_avg = self.variable("batch_stats", "w_avg",
                                 lambda: jnp.zeros((self.w_dim,), jnp.float32))
      self.pl_mean = self.variable("batch_stats", "pl_mean", lambda: jnp.zeros((), jnp.float32))
    else:
      self.w_avg = self.pl_mean = None

  def ws(self, z: jax.Array, labels: Optional[jax.Array] = None, *, train: bool = False,
         z2: Optional[jax.Array] = None, mix_layer: Optional[jax.Array] = None,
         truncation_psi: Any = 1.0, truncation_center: Optional[jax.Array] = None
         ) -> jax.Array:
    """The w of every synthesis slot, (batch, num_ws, w_dim); see the class docstring."""
    w = self.mapping(z, labels)
    truncate = not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1.0)
    if truncate and truncation_center is None and self.w_avg is None:
      raise ValueError("the truncation trick needs the tracked w average: apply the "
                       "generator with its batch_stats (or give truncation_center)")
    if truncation_center is not None and jnp.shape(truncation_center) != w.shape:
      raise ValueError(f"truncation_center must be (batch, w_dim) = {w.shape}, got "
                       f"{jnp.shape(truncation_center)}")
    avg = None if self.w_avg is None else self.w_avg.value  # before this batch's update
    if (train and self.w_avg is not None and self.is_mutable_collection("batch_stats")
        and not self.is_initializing()):
      mean = jax.lax.stop_gradient(jnp.mean(w.astype(jnp.float32), axis=0))
      self.w_avg.value = mean + self.w_avg_decay * (avg - mean)
    center = avg if truncation_center is None else truncation_center

    def truncated(w):
      if not truncate:
        return w
      c = center.astype(w.dtype)
      return c + jnp.asarray(truncation_psi, w.dtype) * (w - c)

    num_ws = self.num_ws
    ws = jnp.broadcast_to(truncated(w)[:, None], (w.shape[0], num_ws, self.w_dim))
    if z2 is not None:
      if mix_layer is None:
        raise ValueError("style mixing needs mix_layer along with z2")
      w2 = truncated(self.mapping(z2, labels))
      first = jnp.arange(num_ws)[None, :] < jnp.reshape(jnp.asarray(mix_layer), (-1, 1))
      ws = jnp.where(first[:, :, None], ws, w2[:, None])
    return ws

  def label_w_avg(self, labels: jax.Array, z: jax.Array) -> jax.Array:
    """Each label's own average w, (batch, w_dim): row i is the mean of mapping(z_k,
    labels[i]) over the latents z (K, latent_dim), the centre that conditional truncation
    pulls sample i towards (conditional generators only)."""
    if not self.label_classes:
      raise ValueError("label_w_avg needs a conditional generator (model.label_classes)")
    batch, count = labels.shape[0], z.shape[0]
    w = self.mapping(jnp.tile(z, (batch, 1)), jnp.repeat(labels, count, axis=0))
    return jnp.mean(w.astype(jnp.float32).reshape(batch, count, -1), axis=1)

  def synthesize(self, ws: jax.Array) -> jax.Array:
    """Images from the w of every slot, (batch, num_ws, w_dim)."""
    return self.synthesis(ws)

  def __call__(self, z: jax.Array, labels: Optional[jax.Array] = None, *, train: bool = False,
               z2: Optional[jax.Array] = None, mix_layer: Optional[jax.Array] = None,
               truncation_psi: Any = 1.0, truncation_center: Optional[jax.Array] = None
               ) -> jax.Array:
    return self.synthesize(self.ws(z, labels, train=train, z2=z2, mix_layer=mix_layer,
                                   truncation_psi=truncation_psi,
                                   truncation_center=truncation_center))


class DiscriminatorBlock(nn.Module):
  """Residual block: (conv3x3, conv3x3, avg-pool) + (avg-pool, 1x1 conv w/o bias), / sqrt(2)."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    skip = EqualConv(self.features, 1, use_bias=False, name="skip")(downsample2x(x))
    x = lrelu(EqualConv(x.shape[-1], 3, name="conv0")(x))
    x = lrelu(downsample2x(EqualConv(self.features, 3, name="conv1")(x)))
    return (x + skip) * (1.0 / math.sqrt(2.0))


class Discriminator(nn.Module):
  """images (batch, size, size, channels) -> logits (batch,), resnet architecture.

  Conditional (`label_classes` non-empty): called with labels (batch, heads), the
  projection and/or AC-GAN heads of models/conditional.py (`d_cond`) read phi, the output
  of the last hidden dense layer (StyleGAN2-ADA projects its label mapping onto the same
  features). `train` is accepted for the common interface and unused.
  """
  image_size: int = 64
  width: int = 64
  max_channels: int = 512
  mbstd_group: int = 4
  label_classes: Tuple[int, ...] = ()  # classes per label head; () unconditional
  d_cond: str = "projection"  # conditional: projection | acgan | projection+acgan

  @nn.compact
  def __call__(self, x: jax.Array, labels: Optional[jax.Array] = None, *, train: bool = False,
               return_aux: bool = False) -> Any:
    layers.check_image_size(x, self.image_size)
    n_dbl = num_doublings(self.image_size)
    ch = lambda r: channels_at(r, self.image_size, self.width, self.max_channels)
    x = lrelu(EqualConv(ch(self.image_size), 1, name="fromrgb")(x))
    for i in range(n_dbl, 0, -1):
      r = 4 * 2**i
      x = DiscriminatorBlock(ch(r // 2), name=f"b{r}")(x)
    x = minibatch_stddev(x, self.mbstd_group)
    x = lrelu(EqualConv(ch(4), 3, name="b4_conv")(x))
    phi = lrelu(EqualDense(ch(4), name="b4_dense")(x.reshape(x.shape[0], -1)))
    logit = EqualDense(1, name="b4_out")(phi).reshape(x.shape[0])
    if not self.label_classes and not return_aux and labels is None:
      return logit
    return conditional.discriminator_output(logit, phi, labels, self.label_classes, self.d_cond,
                                            False, train, return_aux)


def build_stylegan2(model_config, example_shape: Sequence[int],
                    label_classes: Tuple[int, ...] = ()) -> Tuple[nn.Module, nn.Module]:
  """StyleGAN2 (generator, discriminator) for square images whose side is a power of two >= 8;
  class-conditional for non-empty `label_classes` (model.d_cond for D; G's label embedding
  of model.label_embed_dim, 0 or absent: w_dim)."""
  image_size, channels = layers.square_images(example_shape, "StyleGAN2")
  num_doublings(image_size)  # fail early on an unsupported size
  mapping_layers = model_config.get("mapping_layers", 8)
  if mapping_layers < 1:
    raise ValueError(f"model.mapping_layers must be >= 1, got {mapping_layers}")
  max_channels = model_config.get("max_channels", 512)
  mbstd_group = model_config.get("mbstd_group", 4)
  if max_channels < 1 or mbstd_group < 1:
    raise ValueError(f"model.max_channels and model.mbstd_group must be >= 1, got "
                     f"{max_channels}, {mbstd_group}")
  w_dim = model_config.get("w_dim", 0) or model_config.latent_dim
  noise_mode = model_config.get("noise", "const")
  check_choice("model.noise", noise_mode, NOISE_MODES)
  w_avg_decay = model_config.get("w_avg_decay", 0.995)
  if not 0.0 <= w_avg_decay < 1.0:
    raise ValueError(f"model.w_avg_decay must be in [0, 1), got {w_avg_decay}")
  style_mixing = model_config.get("style_mixing", 0.0)
  if not 0.0 <= style_mixing <= 1.0:
    raise ValueError(f"model.style_mixing must be a probability in [0, 1], got {style_mixing}")
  cond = conditional.conditional_options(model_config, label_classes)
  if label_classes:
    cond["g"]["embed_dim"] = model_config.get("label_embed_dim", 0)
    if cond["g"]["embed_dim"] < 0:
      raise ValueError(f"model.label_embed_dim must be >= 0, got {cond['g']['embed_dim']}")
  return (Generator(image_size=image_size, width=model_config.g_width, channels=channels,
                    w_dim=w_dim, mapping_layers=mapping_layers, max_channels=max_channels,
                    noise_mode=noise_mode, w_avg_decay=w_avg_decay, **cond["g"]),
          Discriminator(image_size=image_size, width=model_config.d_width,
                        max_channels=max_channels, mbstd_group=mbstd_group, **cond["d"]))
