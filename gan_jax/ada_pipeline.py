"""StyleGAN2-ADA's augmentation pipeline ('bgc': Karras et al., 2020, appendix B) for D's inputs.

Two augmentations for augment.py's registry. Unlike DiffAugment's, each applies the
augmentation probability p itself, as ADA does: every transformation below draws its own
coin per sample (the rotations 1 - sqrt(1 - p) each, so that one of the two happens with
probability p), and the transformations that happen compose into one map per sample.

  ada_geometric: x-flip, a multiple of 90 degrees, an integer translation (up to 1/8 of
    the side; ADA's 'blit' group), then isotropic scaling, rotation, anisotropic scaling,
    rotation and a fractional translation: one affine map of the pixel grid, applied as
    one bilinear warp with mirrored borders (reflection without repeating the edge).
  ada_color: brightness, contrast, luma flip, hue rotation and saturation: one affine map
    of the RGB values about 0 (images in [-1, 1]).

Both are linear in the pixels, so G's gradient flows through them. Not reproduced: ADA
warps a 2x-upsampled image through a wavelet low-pass filter, against aliasing under
rotation and scaling; here the warp is bilinear at the image's own resolution.
"""

import math

import jax
import jax.numpy as jnp
from jax.scipy import ndimage
import numpy as np

# ADA's strengths (its AugmentPipe defaults).
XINT_MAX = 0.125        # integer translation: uniform, as a fraction of the side
SCALE_STD = 0.2         # isotropic scale: 2^N(0, std^2)
ROTATE_MAX = 1.0        # rotation: uniform in [-pi, pi] x this
ANISO_STD = 0.2         # anisotropic scale: 2^N(0, std^2) along x, its inverse along y
XFRAC_STD = 0.125       # fractional translation: N(0, std^2), as a fraction of the side
BRIGHTNESS_STD = 0.2    # added to every channel: N(0, std^2)
CONTRAST_STD = 0.5      # every channel scaled by 2^N(0, std^2)
HUE_MAX = 1.0           # rotation about the luma axis: uniform in [-pi, pi] x this
SATURATION_STD = 1.0    # chroma scaled by 2^N(0, std^2)

# ADA's (unweighted) luma direction; numpy, so that importing this module starts no JAX
# backend (a multi-process run must call jax.distributed.initialize first).
LUMA_AXIS = np.full((3,), 1.0 / math.sqrt(3.0), np.float32)


def translation_matrices(tx: jax.Array, ty: jax.Array) -> jax.Array:
  """(n, 3, 3) homogeneous maps (x, y) -> (x + tx, y + ty)."""
  one, zero = jnp.ones_like(tx), jnp.zeros_like(tx)
  return jnp.stack([jnp.stack([one, zero, tx], -1), jnp.stack([zero, one, ty], -1),
                    jnp.stack([zero, zero, one], -1)], -2)


def scale_matrices(sx: jax.Array, sy: jax.Array) -> jax.Array:
  """(n, 3, 3) homogeneous maps (x, y) -> (sx x, sy y)."""
  zero = jnp.zeros_like(sx)
  return jnp.stack([jnp.stack([sx, zero, zero], -1), jnp.stack([zero, sy, zero], -1),
                    jnp.stack([zero, zero, jnp.ones_like(sx)], -1)], -2)


def rotation_matrices(theta: jax.Array) -> jax.Array:
  """(n, 3, 3) homogeneous rotations by `theta` (x right, y down: clockwise on screen)."""
  c, s, zero = jnp.cos(theta), jnp.sin(theta), jnp.zeros_like(theta)
  return jnp.stack([jnp.stack([c, -s, zero], -1), jnp.stack([s, c, zero], -1),
                    jnp.stack([zero, zero, jnp.ones_like(theta)], -1)], -2)


def _gated(key: jax.Array, p, value: jax.Array, identity: float) -> jax.Array:
  """`value` (n, ...) where sample n's coin of probability p comes up, else `identity`."""
  coin = jax.random.bernoulli(key, p, value.shape[:1])
  return jnp.where(coin.reshape(coin.shape + (1,) * (value.ndim - 1)), value, identity)


def geometric_matrices(key: jax.Array, n: int, height: int, width: int, p) -> jax.Array:
  """(n, 3, 3): for each sample, the map from an output pixel's centred coordinates (x right,
  y down, in pixels, 0 at the image's centre) to the input location it samples: the
  inverse of the transformations ada_geometric draws, in their order."""
  keys = iter(jax.random.split(key, 16))
  uniform = lambda *shape: jax.random.uniform(next(keys), (n,) + shape)
  normal = lambda *shape: jax.random.normal(next(keys), (n,) + shape)
  size = jnp.array([width, height], jnp.float32)
  p_rotate = 1.0 - jnp.sqrt(jnp.maximum(1.0 - jnp.asarray(p, jnp.float32), 0.0))
  flip = _gated(next(keys), p, jnp.floor(uniform() * 2), 0.0)
  quarter = _gated(next(keys), p, jnp.floor(uniform() * 4), 0.0)
  shift = _gated(next(keys), p, jnp.round((uniform(2) * 2 - 1) * XINT_MAX * size), 0.0)
  scale = _gated(next(keys), p, jnp.exp2(normal() * SCALE_STD), 1.0)
  pre = _gated(next(keys), p_rotate, (uniform() * 2 - 1) * math.pi * ROTATE_MAX, 0.0)
  aniso = _gated(next(keys), p, jnp.exp2(normal() * ANISO_STD), 1.0)
  post = _gated(next(keys), p_rotate, (uniform() * 2 - 1) * math.pi * ROTATE_MAX, 0.0)
  frac = _gated(next(keys), p, normal(2) * XFRAC_STD * size, 0.0)
  # Each transformation's inverse, multiplied on the right in the order they apply: the
  # product maps the output back through the last transformation first.
  inverses = [scale_matrices(1.0 - 2.0 * flip, jnp.ones_like(flip)),
              rotation_matrices(-quarter * math.pi / 2),
              translation_matrices(-shift[:, 0], -shift[:, 1]),
              scale_matrices(1.0 / scale, 1.0 / scale),
              rotation_matrices(-pre),
              scale_matrices(1.0 / aniso, aniso),
              rotation_matrices(-post),
              translation_matrices(-frac[:, 0], -frac[:, 1])]
  matrix = inverses[0]
  for inverse in inverses[1:]:
    matrix = matrix @ inverse
  return matrix


def warp(x: jax.Array, matrices: jax.Array) -> jax.Array:
  """NHWC `x` resampled bilinearly: output pixel (i, j) of sample n is x[n] at
  matrices[n] @ (j - (W-1)/2, i - (H-1)/2, 1), borders mirrored (no edge repeat)."""
  height, width = x.shape[1:3]
  cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing="ij")
  grid = jnp.stack([cols - cx, rows - cy, jnp.ones_like(rows)])  # (3, H, W)

  def one(image, matrix):
    source = jnp.einsum("ij,jhw->ihw", matrix.astype(jnp.float32), grid)
    where = [source[1] + cy, source[0] + cx]
    channel = lambda c: ndimage.map_coordinates(c, where, order=1, mode="mirror")
    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

  return jax.vmap(one)(x, matrices).astype(x.dtype)


def ada_geometric(key: jax.Array, x: jax.Array, p=1.0) -> jax.Array:
  """ADA's geometric augmentations of NHWC `x`, each with probability `p` per sample."""
  matrices = geometric_matrices(key, x.shape[0], x.shape[1], x.shape[2], p)
  return warp(x, matrices)


def luma_flip_matrix() -> jax.Array:
  """(3, 3): RGB reflected through the plane orthogonal to the luma axis."""
  return jnp.eye(3) - 2.0 * jnp.outer(LUMA_AXIS, LUMA_AXIS)


def hue_matrices(theta: jax.Array) -> jax.Array:
  """(n, 3, 3): RGB rotated about the luma axis by `theta` (Rodrigues' formula)."""
  v = LUMA_AXIS
  cross = jnp.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
  c, s = jnp.cos(theta)[:, None, None], jnp.sin(theta)[:, None, None]
  return c * jnp.eye(3) + s * cross + (1.0 - c) * jnp.outer(v, v)


def saturation_matrices(s: jax.Array) -> jax.Array:
  """(n, 3, 3): RGB's chroma (the part orthogonal to the luma axis) scaled by `s`."""
  luma = jnp.outer(LUMA_AXIS, LUMA_AXIS)
  return luma + (jnp.eye(3) - luma) * s[:, None, None]


def color_transforms(key: jax.Array, n: int, p):
  """((n, 3, 3), (n, 3)): each sample's colour map rgb -> M rgb + b, the composition of the
  transformations ada_color draws, in their order."""
  keys = iter(jax.random.split(key, 10))
  brightness = _gated(next(keys), p, jax.random.normal(next(keys), (n,)) * BRIGHTNESS_STD, 0.0)
  contrast = _gated(next(keys), p, jnp.exp2(jax.random.normal(next(keys), (n,)) * CONTRAST_STD),
                    1.0)
  flipped = _gated(next(keys), p, jnp.floor(jax.random.uniform(next(keys), (n,)) * 2), 0.0)
  hue = _gated(next(keys), p, (jax.random.uniform(next(keys), (n,)) * 2 - 1) * math.pi * HUE_MAX,
               0.0)
  saturation = _gated(next(keys), p,
                      jnp.exp2(jax.random.normal(next(keys), (n,)) * SATURATION_STD), 1.0)
  # Brightness, then contrast: b scaled with the image; the later maps are linear.
  matrix = contrast[:, None, None] * jnp.eye(3)
  offset = (contrast * brightness)[:, None] * jnp.ones(3)
  flip = jnp.where(flipped[:, None, None] > 0, luma_flip_matrix(), jnp.eye(3))
  for linear in (flip, hue_matrices(hue), saturation_matrices(saturation)):
    matrix = linear @ matrix
    offset = jnp.einsum("nij,nj->ni", linear, offset)
  return matrix, offset


def ada_color(key: jax.Array, x: jax.Array, p=1.0) -> jax.Array:
  """ADA's colour augmentations of NHWC RGB `x`, each with probability `p` per sample."""
  if x.shape[-1] != 3:
    raise ValueError(f"ada_color transforms RGB images; got {x.shape[-1]} channels")
  matrix, offset = color_transforms(key, x.shape[0], p)
  out = jnp.einsum("nij,nhwj->nhwi", matrix.astype(x.dtype), x)
  return out + offset[:, None, None, :].astype(x.dtype)
