"""Layers shared by the model families."""

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def num_doublings(image_size: int, family: str) -> int:
  """How many x2 resolution steps lie between 4x4 and `image_size`; a ValueError naming
  the model `family` unless the size is a power of two >= 8."""
  n = int(round(math.log2(image_size))) - 2 if image_size > 0 else -1
  if n < 1 or 4 * 2**n != image_size:
    raise ValueError(
        f"{family} needs an image size that is a power of two >= 8, got {image_size}")
  return n
# Output phase (row or column parity) -> the 4-tap kernel rows it uses, and the
# input padding that lines those taps up with x[m-1], x[m] (even) or x[m], x[m+1] (odd).
_PHASE_TAPS = ((0, 2), (1, 3))
_PHASE_PADDING = ((1, 0), (0, 1))


UPCONV_IMPLS = ("phases", "transpose")


class UpConv(nn.Module):
  """x2 upsampling convolution: nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME").

  The same function and the same `kernel` parameter (4, 4, in, out) as that
  transposed convolution, computed as four 2x2 convolutions, one per output
  pixel phase, interleaved into the doubled grid. The two agree to float
  rounding; this form avoids the input-dilated convolution whose weight
  gradient XLA's CPU backend computes about 30x slower than a plain one.
  """
  features: int
  use_bias: bool = False
  kernel_init: Callable = nn.initializers.lecun_normal()
  impl: str = "phases"  # phases: four 2x2 convolutions | transpose: lax.conv_transpose

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.impl not in UPCONV_IMPLS:
      raise ValueError(f"unknown UpConv impl {self.impl!r}; choose from: {', '.join(UPCONV_IMPLS)}")
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
    if self.impl == "transpose":
      y = jax.lax.conv_transpose(x, kernel.astype(x.dtype), (2, 2), "SAME",
                                 dimension_numbers=_DIMENSIONS)
      return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y
    phases = []
    for row_taps, row_pad in zip(_PHASE_TAPS, _PHASE_PADDING):
      row = []
      for col_taps, col_pad in zip(_PHASE_TAPS, _PHASE_PADDING):
        k = kernel[jnp.array(row_taps)][:, jnp.array(col_taps)]
        row.append(jax.lax.conv_general_dilated(
            x, k, (1, 1), (row_pad, col_pad), dimension_numbers=_DIMENSIONS))
      phases.append(jnp.stack(row, axis=3))    # (B, H, W, col phase, C)
    y = jnp.stack(phases, axis=2)               # (B, H, row phase, W, col phase, C)
    b, h, _, w, _, c = y.shape
    y = y.reshape(b, 2 * h, 2 * w, c)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y
