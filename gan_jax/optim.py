"""Each network's optax chain, built from `config.optim`.

`config.optim.name` picks the optimizer for both networks; learning rate and
betas are per network (`g_lr`, `d_lr`, `g_betas`, `d_betas`). Later links of
the chain (Lipschitz projections such as weight clipping) go after the
optimizer, so they see the updated parameters.
"""

from typing import Callable, Sequence

import optax

from gan_jax.registry import Registry

OptimizerFactory = Callable[[float, Sequence[float]], optax.GradientTransformation]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")


@OPTIMIZERS.register("adam")
def adam(lr: float, betas: Sequence[float]) -> optax.GradientTransformation:
  """Adam with (b1, b2) = betas."""
  b1, b2 = betas
  return optax.adam(lr, b1=b1, b2=b2)


@OPTIMIZERS.register("rmsprop")
def rmsprop(lr: float, betas: Sequence[float]) -> optax.GradientTransformation:
  """RMSProp (decay 0.99, as PyTorch's default and the WGAN paper's choice); betas unused."""
  del betas
  return optax.rmsprop(lr, decay=0.99, eps=1e-8)


@OPTIMIZERS.register("sgd")
def sgd(lr: float, betas: Sequence[float]) -> optax.GradientTransformation:
  """Plain SGD; betas unused."""
  del betas
  return optax.sgd(lr)


def make_optimizer(optim_config, network: str) -> optax.GradientTransformation:
  """The optax transformation for `network` ('g' or 'd')."""
  if network not in ("g", "d"):
    raise ValueError(f"network must be 'g' or 'd', got {network!r}")
  factory = OPTIMIZERS.get(optim_config.name)
  lr = optim_config[f"{network}_lr"]
  betas = tuple(optim_config[f"{network}_betas"])
  if len(betas) != 2:
    raise ValueError(f"optim.{network}_betas must be two numbers, got {betas}")
  return factory(lr, betas)
