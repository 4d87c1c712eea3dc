"""Differentiable augmentation of D's inputs (DiffAugment: Zhao et al., 2020).

With little data a GAN's discriminator memorises the training images, its
feedback to G degrades, and training collapses. DiffAugment applies the same
random, differentiable transformations T to every image D sees, real or
generated, in both D's and G's updates: D learns to tell T(x) from T(G(z)), and
G's gradient flows back through T, so G is not pushed to reproduce the
augmentation (as it would be if only the reals were augmented).

Each augmentation is `fn(key, x) -> x` on a float NHWC batch in [-1, 1]: a pure
function of its key, drawing its parameters independently for each sample, and
differentiable with respect to the pixels. `make_augment(policy, p)` chains the
comma-separated `policy`; each augmentation is applied to each sample with
probability p, independently (p = 1 is DiffAugment; p < 1 is ADA's form, Karras
et al., 2020, at a fixed p; the train step's `ada` adapts p: gan_jax/step.py).
StyleGAN2-ADA's own pipeline (policy 'ada': gan_jax/ada_pipeline.py) takes p itself, one
coin per transformation and sample.
"""

from typing import Callable, List, Optional

import jax
import jax.numpy as jnp

from gan_jax import ada_pipeline
from gan_jax.registry import Registry, check_choice

AugmentFn = Callable[[jax.Array, jax.Array], jax.Array]
AUGMENTATIONS: Registry[AugmentFn] = Registry("augmentation")

TRANSLATION_RATIO = 1 / 8  # largest shift, as a fraction of the image's height and width
CUTOUT_RATIO = 1 / 2       # side of the cut-out square, as a fraction of the image's sides


def _per_sample_uniform(key: jax.Array, x: jax.Array, low: float, high: float) -> jax.Array:
  """One uniform draw in [low, high) per sample, shaped to broadcast over x (N, 1, 1, 1)."""
  shape = (x.shape[0],) + (1,) * (x.ndim - 1)
  return jax.random.uniform(key, shape, x.dtype, low, high)


@AUGMENTATIONS.register("color")
def color(key: jax.Array, x: jax.Array) -> jax.Array:
  """Random brightness, saturation and contrast, each drawn per sample.

  brightness: x + b, b ~ U[-0.5, 0.5);
  saturation: each pixel's channels scaled about their mean by s ~ U[0, 2);
  contrast: every value scaled about the image's mean by c ~ U[0.5, 1.5).
  Nothing is clipped (the images D sees may leave [-1, 1] somewhat); a
  constant image stays constant, with only its brightness shifted.
  """
  k_brightness, k_saturation, k_contrast = jax.random.split(key, 3)
  x = x + _per_sample_uniform(k_brightness, x, -0.5, 0.5)
  pixel_mean = jnp.mean(x, axis=-1, keepdims=True)
  x = pixel_mean + (x - pixel_mean) * _per_sample_uniform(k_saturation, x, 0.0, 2.0)
  image_mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return image_mean + (x - image_mean) * _per_sample_uniform(k_contrast, x, 0.5, 1.5)


@AUGMENTATIONS.register("flip")
def flip(key: jax.Array, x: jax.Array) -> jax.Array:
  """Each sample mirrored left-right with probability 1/2 (ADA's x-flip; CR-GAN's T flips
  too). Exactly a permutation of each image's pixels, so linear and invertible."""
  mirrored = jax.random.bernoulli(key, 0.5, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mirrored, x[:, :, ::-1], x)


def max_shift(x: jax.Array) -> tuple:
  """(rows, columns): the largest translation of a batch shaped like x, 1/8 of its sides (rounded)."""
  return tuple(int(side * TRANSLATION_RATIO + 0.5) for side in x.shape[1:3])


def translate(x: jax.Array, shifts: jax.Array) -> jax.Array:
  """Each image of x moved by its integer (rows, columns) in `shifts` (N, 2), zero-filled.

  out[n, i, j] = x[n, i - dy_n, j - dx_n] (0 outside the image): a positive dy
  moves the content down, a positive dx right. Shifts must lie within
  max_shift(x). Implemented as zero padding and one dynamic slice per sample,
  so it is linear in the pixels (the gradient is the reverse shift).
  """
  pad_y, pad_x = max_shift(x)
  padded = jnp.pad(x, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)))
  height, width, channels = x.shape[1:]

  def one(image, shift):
    start = (pad_y - shift[0], pad_x - shift[1], 0)
    return jax.lax.dynamic_slice(image, start, (height, width, channels))

  return jax.vmap(one)(padded, shifts.astype(jnp.int32))


@AUGMENTATIONS.register("translation")
def translation(key: jax.Array, x: jax.Array) -> jax.Array:
  """Each sample shifted by random integers in [-s, s] rows and columns (s = 1/8 of the side),
  with zero padding."""
  pad_y, pad_x = max_shift(x)
  k_y, k_x = jax.random.split(key)
  shifts = jnp.stack([jax.random.randint(k_y, (x.shape[0],), -pad_y, pad_y + 1),
                      jax.random.randint(k_x, (x.shape[0],), -pad_x, pad_x + 1)], axis=1)
  return translate(x, shifts)


def cutout_size(x: jax.Array) -> tuple:
  """(rows, columns) of the region cutout zeroes in a batch shaped like x: half of each side."""
  return tuple(max(1, int(side * CUTOUT_RATIO)) for side in x.shape[1:3])


def cut_out(x: jax.Array, corners: jax.Array) -> jax.Array:
  """x with, in each image n, the cutout_size(x) rectangle whose top-left pixel is
  corners[n] = (row, column) set to 0."""
  rows, columns = cutout_size(x)
  y = jnp.arange(x.shape[1])[None, :, None]
  z = jnp.arange(x.shape[2])[None, None, :]
  top, left = corners[:, 0, None, None], corners[:, 1, None, None]
  inside = (y >= top) & (y < top + rows) & (z >= left) & (z < left + columns)
  return x * (~inside)[..., None].astype(x.dtype)


@AUGMENTATIONS.register("cutout")
def cutout(key: jax.Array, x: jax.Array) -> jax.Array:
  """One square of half the image's side zeroed per sample, at a random place.

  The square always lies wholly inside the image (its top-left corner is
  uniform over the positions that allow it), so exactly a quarter of each
  image is cut; DiffAugment's reference also lets it overhang the border.
  """
  rows, columns = cutout_size(x)
  k_y, k_x = jax.random.split(key)
  corners = jnp.stack([jax.random.randint(k_y, (x.shape[0],), 0, x.shape[1] - rows + 1),
                       jax.random.randint(k_x, (x.shape[0],), 0, x.shape[2] - columns + 1)],
                      axis=1)
  return cut_out(x, corners)


# StyleGAN2-ADA's pipeline (gan_jax/ada_pipeline.py): each applies p itself, per
# transformation and sample (APPLIES_P), where make_augment gates the others as a whole.
AUGMENTATIONS.register("ada_geometric")(ada_pipeline.ada_geometric)
AUGMENTATIONS.register("ada_color")(ada_pipeline.ada_color)
APPLIES_P = frozenset({"ada_geometric", "ada_color"})
PRESETS = {"ada": ("ada_geometric", "ada_color")}  # a policy name -> the augmentations it means


def parse_policy(policy: str) -> List[str]:
  """'color, translation' -> ['color', 'translation']; '' -> []; a preset name (PRESETS:
  'ada', ADA's 'bgc' pipeline) stands for its augmentations. Unknown or repeated names raise
  ValueError (listing the valid names)."""
  names = []
  for name in (n.strip() for n in policy.split(",") if n.strip()):
    names.extend(PRESETS.get(name, (name,)))
  for name in names:
    check_choice("augmentation", name, [*AUGMENTATIONS.names(), *PRESETS])
  if len(set(names)) != len(names):
    raise ValueError(f"augmentation listed twice in {policy!r}")
  return names


def make_augment(policy: str, p: float = 1.0) -> Optional[AugmentFn]:
  """The augmentation `fn(key, x, p=None) -> x` applying `policy`'s augmentations in order,
  each to each sample with probability p (ADA's pipeline, APPLIES_P: each of its
  transformations); None (no augmentation) for an empty policy or p == 0. A `p` given to fn
  (a traced scalar: ADA's adaptive probability, or the annealed one) replaces the static
  one.

  Augmentation i draws from fold_in(key, i): its parameters from the first half
  of split(...), whether it applies to each sample (only when p < 1, or p is given
  to fn) from the second.
  """
  names = parse_policy(policy)
  if not 0.0 <= p <= 1.0:
    raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")
  if not names or p == 0.0:
    return None
  fns = [(AUGMENTATIONS.get(name), name in APPLIES_P) for name in names]
  static_p = p

  def augment(key: jax.Array, x: jax.Array, p: Optional[jax.Array] = None) -> jax.Array:
    """x with the policy's augmentations applied (see make_augment)."""
    for i, (fn, applies_p) in enumerate(fns):
      k_params, k_apply = jax.random.split(jax.random.fold_in(key, i))
      if applies_p:
        x = fn(k_params, x, static_p if p is None else p)
        continue
      augmented = fn(k_params, x)
      if p is not None or static_p < 1.0:
        apply = jax.random.bernoulli(k_apply, static_p if p is None else p,
                                     (x.shape[0],) + (1,) * (x.ndim - 1))
        augmented = jnp.where(apply, augmented, x)
      x = augmented
    return x

  return augment
