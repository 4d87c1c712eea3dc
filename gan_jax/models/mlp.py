"""Fully connected generator and discriminator for low-dimensional data (the toy lab).

The generator maps z through `depth` hidden ReLU (or ELU) layers to a linear output
reshaped to the example shape (no tanh: toy data is not bounded to [-1, 1]);
with depth 0 it is the affine map x = W z + b, whose output distribution is
known in closed form (a Gaussian for Gaussian z), which the lab's theory
experiments use. The discriminator flattens its input and applies `depth`
hidden LeakyReLU(0.2) layers and a linear logit; both activations are
1-Lipschitz, so the product of the layers' spectral norms bounds D's Lipschitz
constant (what spectral normalisation and its projection control).
"""

import math
from typing import Tuple

import flax.linen as nn
import jax

from gan_jax.models.dcgan import spectral_normalised
from gan_jax.registry import check_choice

ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu}


class Generator(nn.Module):
  """z (batch, latent_dim) -> samples (batch, *example_shape); with `spectral_norm` every
  Dense layer is W / sigma(W) (as the discriminator's option)."""
  example_shape: Tuple[int, ...] = (2,)
  width: int = 128
  depth: int = 3
  spectral_norm: bool = False
  activation: str = "relu"  # hidden layers: relu | elu (gan_jax/gon.py needs elu)

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    check_choice("generator activation", self.activation, ACTIVATIONS)
    act = ACTIVATIONS[self.activation]
    sn = lambda layer, x: spectral_normalised(layer, x, self.spectral_norm, train)
    x = z
    for _ in range(self.depth):
      x = act(sn(nn.Dense(self.width), x))
    x = sn(nn.Dense(math.prod(self.example_shape)), x)
    return x.reshape(z.shape[0], *self.example_shape)


class Discriminator(nn.Module):
  """samples (batch, *example_shape) -> logits (batch,).

  With `spectral_norm` every Dense layer is reparameterised as W / sigma(W) (the
  power-iteration vector lives in `batch_stats`, advanced in train mode), as in
  dcgan.Discriminator.
  """
  width: int = 128
  depth: int = 3
  spectral_norm: bool = False

  def _dense(self, x, features, train):
    return spectral_normalised(nn.Dense(features), x, self.spectral_norm, train)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for _ in range(self.depth):
      x = nn.leaky_relu(self._dense(x, self.width, train), 0.2)
    return self._dense(x, 1, train).reshape(x.shape[0])
