"""Generator/discriminator families, chosen by `config.model.name`.

Every family builds a pair of flax modules with one interface:
  generator.apply(variables, z, train=...)       -> images in [-1, 1], NHWC
  discriminator.apply(variables, x, train=...)   -> logits, shape (batch,)
Variables hold `params` and, for normalised models, `batch_stats`.
"""

from typing import Callable, Tuple

import flax.linen as nn

from gan_jax.models import dcgan
from gan_jax.registry import Registry

ModelPair = Tuple[nn.Module, nn.Module]
MODELS: Registry[Callable[..., ModelPair]] = Registry("model")


@MODELS.register("dcgan")
def build_dcgan(model_config, image_size: int, channels: int = 3) -> ModelPair:
  """DCGAN generator and discriminator at `image_size` (a power of two >= 8)."""
  dcgan.num_doublings(image_size)  # fail early on an unsupported size
  d_norm = model_config.get("d_norm", "batch")
  if d_norm not in dcgan.NORMS:
    raise ValueError(f"unknown model.d_norm {d_norm!r}; choose from: {', '.join(dcgan.NORMS)}")
  return (dcgan.Generator(image_size=image_size, width=model_config.g_width,
                          channels=channels),
          dcgan.Discriminator(image_size=image_size, width=model_config.d_width, norm=d_norm,
                              spectral_norm=model_config.get("d_spectral_norm", False)))


def build_models(model_config, image_size: int, channels: int = 3) -> ModelPair:
  """(generator, discriminator) of the family `model_config.name`."""
  return MODELS.get(model_config.name)(model_config, image_size, channels)
