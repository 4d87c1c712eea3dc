"""Generator/discriminator families, chosen by `config.model.name`.

Every family builds a pair of flax modules with one interface:
  generator.apply(variables, z, train=...)       -> samples (batch, *example_shape)
  discriminator.apply(variables, x, train=...)   -> logits, shape (batch,)
Families in conditional.CONDITIONAL_FAMILIES (dcgan, resnet, biggan, biggan_deep, stylegan2,
progan, r3gan) also build class-conditional pairs (`label_classes`, the classes per label head):
  generator.apply(variables, z, labels, train=...)
  discriminator.apply(variables, x, labels, train=..., return_aux=False)
with int32 labels (batch, heads); see models/conditional.py.
Variables hold `params` and, for normalised models, `batch_stats` (StyleGAN2's
generator keeps its tracked w average there). Generators may declare extra
training inputs the step supplies (models/stylegan2.py: `train_rngs`, and
`num_ws`, `ws`, `synthesize` for style mixing and path-length regularisation). The example
shape comes from the data: (size, size, channels) for images, (dim,) for the
toy lab's points. ProGAN's networks (models/progan.py) grow: both read the growth level
the train step sets in their batch_stats. BEGAN's discriminator (models/began.py) is an auto-encoder whose
logits are minus its reconstruction errors; it pairs with the auto-encoder losses only.
BigGAN (models/biggan.py) is the ResNet family with self-attention, hierarchical z, a shared
class embedding and conditional BatchNorm in G; BigGAN-deep (models/biggan_deep.py) the same
with two bottleneck blocks per resolution and all of z fed to every G block. R3GAN
(models/r3gan.py) is a normalisation-free ResNet of grouped inverted-bottleneck blocks.

`config.model.discriminator` swaps the family's discriminator for another architecture
(DISCRIMINATORS; '' keeps the family's own): 'vit' is a vision transformer
(models/vit.py, configured by config.model.vit), for the image families in
SWAPPABLE_FAMILIES, whose G and D train as independent networks; with labels it is
conditional as the family's own D would be (config.model.d_cond).
"""

from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax

from gan_jax.models import (began, biggan, biggan_deep, conditional, dcgan, layers, mlp, progan,
                            r3gan, resnet, stylegan2, vit)
from gan_jax.registry import Registry, check_choice

ModelPair = Tuple[nn.Module, nn.Module]
MODELS: Registry[Callable[..., ModelPair]] = Registry("model")


def resolve_downconv(name: str, backend: Optional[str] = None) -> str:
  """The DownConv form model.downconv names; 'auto' is the faster measured form on the
  backend (default: JAX's): s2d on GPU, strided elsewhere (benchmarks/README.md)."""
  if name == "auto":
    return "s2d" if (backend or jax.default_backend()) == "gpu" else "strided"
  check_choice("model.downconv", name, layers.DOWNCONV_IMPLS + ("auto",))
  return name


@MODELS.register("dcgan")
def build_dcgan(model_config, example_shape: Sequence[int],
                label_classes: Tuple[int, ...] = ()) -> ModelPair:
  """DCGAN generator and discriminator for square images (side a power of two >= 8);
  class-conditional for non-empty `label_classes` (models/conditional.py)."""
  image_size, channels = layers.square_images(example_shape, "DCGAN")
  dcgan.num_doublings(image_size)  # fail early on an unsupported size
  d_norm = model_config.get("d_norm", "batch")
  check_choice("model.d_norm", d_norm, dcgan.NORMS)
  upconv = model_config.get("upconv", "phases")
  check_choice("model.upconv", upconv, layers.UPCONV_IMPLS)
  downconv = resolve_downconv(model_config.get("downconv", "strided"))
  cond = conditional.conditional_options(model_config, label_classes)
  return (dcgan.Generator(image_size=image_size, width=model_config.g_width,
                          channels=channels, upconv=upconv,
                          spectral_norm=model_config.get("g_spectral_norm", False), **cond["g"]),
          dcgan.Discriminator(image_size=image_size, width=model_config.d_width, norm=d_norm,
                              downconv=downconv,
                              spectral_norm=model_config.get("d_spectral_norm", False),
                              **cond["d"]))


@MODELS.register("mlp")
def build_mlp(model_config, example_shape: Sequence[int]) -> ModelPair:
  """Fully connected G and D (models/mlp.py) for data of any shape (the toy lab's points)."""
  g_depth, d_depth = model_config.get("g_depth", 3), model_config.get("d_depth", 3)
  if g_depth < 0 or d_depth < 0:
    raise ValueError(f"model.g_depth and model.d_depth must be >= 0, got {g_depth}, {d_depth}")
  return (mlp.Generator(example_shape=tuple(example_shape), width=model_config.g_width,
                        depth=g_depth,
                        spectral_norm=model_config.get("g_spectral_norm", False)),
          mlp.Discriminator(width=model_config.d_width, depth=d_depth,
                            spectral_norm=model_config.get("d_spectral_norm", False)))


MODELS.register("resnet")(resnet.build_resnet)
MODELS.register("stylegan2")(stylegan2.build_stylegan2)
MODELS.register("progan")(progan.build_progan)
MODELS.register("began")(began.build_began)
MODELS.register("biggan")(biggan.build_biggan)
MODELS.register("biggan_deep")(biggan_deep.build_biggan_deep)
MODELS.register("r3gan")(r3gan.build_r3gan)


DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator")
DISCRIMINATORS.register("vit")(vit.build_discriminator)
# Families whose discriminator another architecture may replace: image families whose G
# and D share nothing (not ProGAN's growth level, BEGAN's auto-encoder losses or the MLP's
# points).
SWAPPABLE_FAMILIES = ("dcgan", "resnet", "biggan", "biggan_deep", "stylegan2", "r3gan")


def _swapped_discriminator(model_config, example_shape: Sequence[int],
                           label_classes: Sequence[int]) -> Optional[nn.Module]:
  """The discriminator config.model.discriminator names (conditional with `label_classes`),
  or None to keep the family's."""
  name = model_config.get("discriminator", "")
  if not name:
    return None
  build = DISCRIMINATORS.get(name)
  if model_config.name not in SWAPPABLE_FAMILIES:
    raise ValueError(
        f"model.discriminator={name!r} replaces the discriminator of "
        f"{', '.join(SWAPPABLE_FAMILIES)}; model.name={model_config.name!r} keeps its own "
        "(set model.discriminator='')")
  return build(model_config, tuple(example_shape), tuple(label_classes))


def build_models(model_config, example_shape: Sequence[int],
                 label_classes: Sequence[int] = ()) -> ModelPair:
  """(generator, discriminator) of the family `model_config.name` for data of `example_shape`;
  class-conditional when `label_classes` (classes per label head) is non-empty, which only
  the families in conditional.CONDITIONAL_FAMILIES support (ValueError for the others).
  The discriminator is model.discriminator's architecture when that is set."""
  build = MODELS.get(model_config.name)
  swapped = _swapped_discriminator(model_config, example_shape, label_classes)
  if not label_classes:
    pair = build(model_config, tuple(example_shape))
  elif model_config.name not in conditional.CONDITIONAL_FAMILIES:
    raise ValueError(
        f"model.name={model_config.name!r} does not support class labels (data.labels is set); "
        f"choose a conditional family: {', '.join(conditional.CONDITIONAL_FAMILIES)}, or set "
        "data.labels=''")
  else:
    pair = build(model_config, tuple(example_shape), tuple(label_classes))
  return pair if swapped is None else (pair[0], swapped)
