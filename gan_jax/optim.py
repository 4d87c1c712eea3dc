"""Each network's optax chain, built from `config.optim`.

`config.optim.name` picks the optimizer for both networks; learning rate and
betas are per network (`g_lr`, `d_lr`, `g_betas`, `d_betas`). A Lipschitz
projection from `config.constraint.{g,d}` (weight clipping, spectral norm
projection) goes last in the chain, so it sees the updated parameters; a weight
regulariser (`g_orthogonal_reg`, `d_orthogonal_reg`: BigGAN's orthogonal
regularisation) goes first, so the optimizer sees the regularised gradient.
"""

from typing import Callable, Optional, Sequence

import optax

from gan_jax import constraints, regularisers
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


def make_constraint(constraint_config, network: str) -> Optional[optax.GradientTransformation]:
  """The Lipschitz projection `constraint_config.<network>` names, or None for ''."""
  name = constraint_config[network]
  if not name:
    return None
  factory = constraints.CONSTRAINTS.get(name)
  options = dict(constraint_config.get(name, {}))
  return factory(pattern=constraint_config.pattern, **options)


def make_optimizer(optim_config, network: str,
                   constraint_config=None) -> optax.GradientTransformation:
  """The optax chain for `network` ('g' or 'd'): its weight regulariser if any, the optimizer,
  then its constraint if any."""
  if network not in ("g", "d"):
    raise ValueError(f"network must be 'g' or 'd', got {network!r}")
  factory = OPTIMIZERS.get(optim_config.name)
  lr = optim_config[f"{network}_lr"]
  betas = tuple(optim_config[f"{network}_betas"])
  if len(betas) != 2:
    raise ValueError(f"optim.{network}_betas must be two numbers, got {betas}")
  chain = [factory(lr, betas)]
  orthogonal = optim_config.get(f"{network}_orthogonal_reg", 0.0)
  if orthogonal:
    pattern = constraints.KERNELS if constraint_config is None else constraint_config.pattern
    chain.insert(0, regularisers.orthogonal_regularisation(orthogonal, pattern))
  constraint = None if constraint_config is None else make_constraint(constraint_config, network)
  if constraint is not None:
    chain.append(constraint)
  return chain[0] if len(chain) == 1 else optax.chain(*chain)
