"""Layers shared by the model families."""

import math
from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.registry import check_choice

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def num_doublings(image_size: int, family: str) -> int:
  """How many x2 resolution steps lie between 4x4 and `image_size`; a ValueError naming
  the model `family` unless the size is a power of two >= 8."""
  n = int(round(math.log2(image_size))) - 2 if image_size > 0 else -1
  if n < 1 or 4 * 2**n != image_size:
    raise ValueError(
        f"{family} needs an image size that is a power of two >= 8, got {image_size}")
  return n


def square_images(example_shape: Sequence[int], family: str) -> Tuple[int, int]:
  """(size, channels) of square image examples (size, size, channels); a ValueError naming
  the model `family` for any other shape."""
  if len(example_shape) != 3 or example_shape[0] != example_shape[1]:
    raise ValueError(f"{family} needs square images (size, size, channels), got data of "
                     f"shape {tuple(example_shape)}")
  return example_shape[0], example_shape[2]


def check_image_size(x: jax.Array, image_size: int) -> None:
  """ValueError unless the images x (batch, H, W, C) are image_size x image_size (what a
  discriminator was built for)."""
  if x.shape[1] != image_size or x.shape[2] != image_size:
    raise ValueError(f"discriminator built for {image_size}x{image_size} images, "
                     f"got {x.shape[1]}x{x.shape[2]}")


def upsample_nearest(x: jax.Array, factor: int = 2) -> jax.Array:
  """NHWC `x` with every pixel repeated into a factor x factor block."""
  if factor == 1:
    return x
  n, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
  return x.reshape(n, h * factor, w * factor, c)


def average_pool(x: jax.Array, factor: int = 2) -> jax.Array:
  """NHWC `x` averaged over factor x factor blocks."""
  if factor == 1:
    return x
  n, h, w, c = x.shape
  return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


# Output phase (row or column parity) -> the 4-tap kernel rows it uses, and the
# input padding that lines those taps up with x[m-1], x[m] (even) or x[m], x[m+1] (odd).
_PHASE_TAPS = ((0, 2), (1, 3))
_PHASE_PADDING = ((1, 0), (0, 1))


UPCONV_IMPLS = ("phases", "stacked", "stacked_gemm", "transpose")


def _valid_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Stride-1 VALID convolution of NHWC `x` with an HWIO `kernel`."""
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=_DIMENSIONS)


@jax.custom_vjp
def valid_conv_gemm_grad(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """_valid_conv(x, kernel), whose kernel gradient is one matrix product per kernel tap
  (x's window under the tap against the output gradient, contracted over batch and space)
  instead of the convolution autodiff derives; the input gradient is autodiff's."""
  return _valid_conv(x, kernel)


def _valid_conv_gemm_grad_fwd(x, kernel):
  return _valid_conv(x, kernel), (x, kernel)


def _valid_conv_gemm_grad_bwd(residuals, dy):
  x, kernel = residuals
  kh, kw = kernel.shape[:2]
  _, h, w, _ = dy.shape
  tap = lambda a, b: jnp.einsum("nhwi,nhwo->io", x[:, a:a + h, b:b + w], dy,
                                preferred_element_type=jnp.float32)
  dkernel = jnp.stack([jnp.stack([tap(a, b) for b in range(kw)]) for a in range(kh)])
  (dx,) = jax.vjp(lambda x: _valid_conv(x, kernel), x)[1](dy)
  return dx, dkernel.astype(kernel.dtype)


valid_conv_gemm_grad.defvjp(_valid_conv_gemm_grad_fwd, _valid_conv_gemm_grad_bwd)


class UpConv(nn.Module):
  """x2 upsampling convolution: nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME").

  The same function and the same `kernel` parameter (4, 4, in, out) as that
  transposed convolution, in one of three computations (`impl`, all equal to float
  rounding):
    phases     four 2x2 convolutions, one per output pixel phase, each on its own
               asymmetrically padded copy of x, interleaved into the doubled grid;
    stacked    one 2x2 convolution of x padded by 1 on every side whose 4 * out
               features are the four phases' kernels; each phase is a shifted
               (H, W) window of its (H + 1, W + 1) output. One GEMM with 4x the
               output features and no padded copies, for (1 + 1/H)^2 the FLOPs;
    stacked_gemm  the stacked form with its kernel gradient as four matrix products, one
               per 2x2 tap (valid_conv_gemm_grad), instead of the convolution over the
               batch that XLA derives for it (slow on the GPU: benchmarks/README.md);
    transpose  lax.conv_transpose (the input-dilated convolution, whose weight
               gradient XLA's CPU backend computes about 30x slower than a plain one).
  benchmarks/README.md records which is fastest where.
  """
  features: int
  use_bias: bool = False
  kernel_init: Callable = nn.initializers.lecun_normal()
  impl: str = "phases"  # phases | stacked | transpose (see the class docstring)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    check_choice("UpConv impl", self.impl, UPCONV_IMPLS)
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
    if self.impl == "transpose":
      y = jax.lax.conv_transpose(x, kernel.astype(x.dtype), (2, 2), "SAME",
                                 dimension_numbers=_DIMENSIONS)
      return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y
    b, h, w, _ = x.shape
    phase_kernels = [[kernel[jnp.array(row_taps)][:, jnp.array(col_taps)]
                      for col_taps in _PHASE_TAPS] for row_taps in _PHASE_TAPS]
    if self.impl in ("stacked", "stacked_gemm"):
      # Features ordered (row phase, col phase, out); padding 1 puts x[m-1], x[m] under
      # output m (the even phase's taps) and x[m], x[m+1] under output m + 1 (the odd's).
      stacked = jnp.concatenate([k for row in phase_kernels for k in row], axis=-1)
      # The padding is explicit (one copy of x) and the convolution VALID: given as conv
      # padding, the kernel gradient ran 12x slower on XLA:CPU. (On the GPU either way one
      # layer's kernel gradient becomes a slow forward convolution over the batch:
      # benchmarks/README.md.)
      conv = valid_conv_gemm_grad if self.impl == "stacked_gemm" else _valid_conv
      out = conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), stacked.astype(x.dtype))
      out = out.reshape(b, h + 1, w + 1, 2, 2, self.features)
      phase = lambda r, c: out[:, r:r + h, c:c + w, r, c]
    else:
      phase = lambda r, c: jax.lax.conv_general_dilated(
          x, phase_kernels[r][c].astype(x.dtype), (1, 1), (_PHASE_PADDING[r], _PHASE_PADDING[c]),
          dimension_numbers=_DIMENSIONS)
    rows = [jnp.stack([phase(r, 0), phase(r, 1)], axis=3) for r in range(2)]  # (B, H, W, 2, C)
    y = jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, self.features)  # (B, H, 2, W, 2, C)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


DOWNCONV_IMPLS = ("strided", "s2d")


class DownConv(nn.Module):
  """x/2 downsampling convolution: nn.Conv(features, (4, 4), strides=(2, 2), padding=1).

  The same function and `kernel` parameter (4, 4, in, out) as that strided convolution,
  in one of two computations (`impl`, equal to float rounding):
    strided  the stride-2 convolution itself;
    s2d      space-to-depth: x padded by 1, each 2x2 block folded into the features
             (4 * in), then a stride-1 2x2 VALID convolution with the kernel refolded
             to (2, 2, 4 * in, out). Same FLOPs; its gradients are stride-1 convolutions,
             which spares the GPU the rhs-dilated weight-gradient convolution that cuDNN
             runs slowly for small outputs (benchmarks/README.md).
  The s2d form needs even heights and widths.
  """
  features: int
  use_bias: bool = False
  kernel_init: Callable = nn.initializers.lecun_normal()
  impl: str = "strided"  # strided | s2d (see the class docstring)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    check_choice("DownConv impl", self.impl, DOWNCONV_IMPLS)
    b, h, w, c = x.shape
    kernel = self.param("kernel", self.kernel_init, (4, 4, c, self.features)).astype(x.dtype)
    if self.impl == "strided":
      y = jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                       dimension_numbers=_DIMENSIONS)
    else:
      if h % 2 or w % 2:
        raise ValueError(f"DownConv impl 's2d' needs even height and width, got {h}x{w}")
      # Padded row 2i + u (u = 2a + p) is block row i + a, phase p: fold p, q into features.
      blocks = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(
          b, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
              b, h // 2 + 1, w // 2 + 1, 4 * c)
      folded = kernel.reshape(2, 2, 2, 2, c, self.features).transpose(0, 2, 1, 3, 4, 5).reshape(
          2, 2, 4 * c, self.features)
      y = jax.lax.conv_general_dilated(blocks, folded, (1, 1), "VALID",
                                       dimension_numbers=_DIMENSIONS)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


GROUPED_CONV_IMPLS = ("lax", "taps")


def grouped_conv_lax(x: jax.Array, kernel: jax.Array, groups: int) -> jax.Array:
  """A stride-1 'SAME' grouped convolution of NHWC `x` with an HWIO `kernel`
  (kh, kw, C / groups, out): lax.conv_general_dilated(feature_group_count=groups)."""
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMENSIONS,
                                      feature_group_count=groups)


def grouped_conv_taps(x: jax.Array, kernel: jax.Array, groups: int) -> jax.Array:
  """A stride-1 'SAME' grouped convolution of NHWC `x` with an odd-sized HWIO `kernel`
  (kh, kw, C / groups, out), as grouped_conv_lax computes it, written as one matrix product
  per kernel tap batched over the groups, so that its gradients (and a penalty's second
  derivatives) are matrix products too: XLA's CPU backend computes a grouped convolution's
  kernel gradient 10-50x slower than this (benchmarks/grouped_conv.md)."""
  n, h, w, _ = x.shape
  kh, kw, per_group, out = kernel.shape
  if kh % 2 == 0 or kw % 2 == 0:
    raise ValueError(f"grouped_conv_taps needs an odd kernel size, got {kh}x{kw}")
  x = x.reshape(n, h, w, groups, per_group).transpose(3, 0, 1, 2, 4)  # (G, N, H, W, C / G)
  x = jnp.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  taps = kernel.reshape(kh, kw, per_group, groups, out // groups).transpose(0, 1, 3, 2, 4)
  y = sum(jnp.einsum("gnhwi,gio->gnhwo", x[:, :, a:a + h, b:b + w], taps[a, b])
          for a in range(kh) for b in range(kw))
  return y.transpose(1, 2, 3, 0, 4).reshape(n, h, w, out)


def resolve_grouped_conv(name: str, backend: Optional[str] = None) -> str:
  """The grouped-convolution form `name` names; 'auto' is taps on the CPU (measured faster
  there) and lax elsewhere (cuDNN's grouped convolutions)."""
  if name == "auto":
    return "taps" if (backend or jax.default_backend()) == "cpu" else "lax"
  check_choice("model.grouped_conv", name, GROUPED_CONV_IMPLS)
  return name


class GroupedConv(nn.Module):
  """nn.Conv(features, (size, size), padding='SAME', feature_group_count=groups,
  use_bias=False): the same function and `kernel` parameter, computed by `impl`: lax (the
  grouped convolution itself) or taps (grouped_conv_taps; for one group, the plain
  convolution, which is 2x faster than taps on the CPU)."""
  features: int
  size: int
  groups: int
  kernel_init: Callable = nn.initializers.lecun_normal()
  impl: str = "lax"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    check_choice("GroupedConv impl", self.impl, GROUPED_CONV_IMPLS)
    channels = x.shape[-1]
    if channels % self.groups or self.features % self.groups:
      raise ValueError(f"{self.groups} groups must divide the {channels} input and "
                       f"{self.features} output channels")
    kernel = self.param("kernel", self.kernel_init,
                        (self.size, self.size, channels // self.groups, self.features))
    kernel = kernel.astype(x.dtype)
    if self.impl == "taps" and self.groups > 1:  # (one group: a plain conv, fast everywhere)
      return grouped_conv_taps(x, kernel, self.groups)
    return grouped_conv_lax(x, kernel, self.groups)
