"""Each network's optax chain, built from `config.optim`.

`config.optim.name` picks the optimizer for both networks; learning rate and
betas are per network (`g_lr`, `d_lr`, `g_betas`, `d_betas`). A Lipschitz
projection from `config.constraint.{g,d}` (weight clipping, spectral norm
projection) goes last in the chain, so it sees the updated parameters; a weight
regulariser (`g_orthogonal_reg`, `d_orthogonal_reg`: BigGAN's orthogonal
regularisation) goes first, so the optimizer sees the regularised gradient.

`config.optim.schedule` scales both learning rates by a function of the training
iteration (SCHEDULES: constant, linear decay to 0 as in WGAN-GP's and SNGAN's code, cosine
decay to a fraction as in R3GAN's, step decay as in BEGAN's). The iteration is each
network's update count, D's divided by d_steps (D takes d_steps updates per iteration), so
both networks follow the same curve; the count lives in the optimizer state, so a resumed
run continues the curve exactly.
The constant schedule leaves the learning rate a number: the same optimizer state and
program as before schedules existed.
"""

from typing import Callable, Dict, Optional, Sequence

import jax.numpy as jnp
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


Schedule = Callable[[jnp.ndarray], jnp.ndarray]  # iteration -> multiplier of the base rate
SCHEDULES: Registry[Callable[..., Optional[Schedule]]] = Registry("learning-rate schedule")


@SCHEDULES.register("constant")
def constant(optim_config, num_steps: int) -> Optional[Schedule]:
  """The base learning rate throughout (None: nothing to schedule)."""
  del optim_config, num_steps
  return None


@SCHEDULES.register("linear")
def linear(optim_config, num_steps: int) -> Schedule:
  """1 until optim.decay_start, then linearly to 0 at optim.decay_iterations (0: the run's
  train.num_steps), 0 after."""
  start = optim_config.get("decay_start", 0)
  end = optim_config.get("decay_iterations", 0) or num_steps
  if start < 0 or end <= start:
    raise ValueError(f"the linear schedule needs 0 <= decay_start < decay_iterations (0: "
                     f"train.num_steps = {num_steps}); got decay_start={start}, "
                     f"decay_iterations={end}")
  return lambda t: jnp.clip((end - t) / (end - start), 0.0, 1.0)


@SCHEDULES.register("cosine")
def cosine(optim_config, num_steps: int) -> Schedule:
  """1 until optim.decay_start, then down a half cosine to optim.decay_final at
  optim.decay_iterations (0: the run's train.num_steps), decay_final after (R3GAN's decay)."""
  start = optim_config.get("decay_start", 0)
  end = optim_config.get("decay_iterations", 0) or num_steps
  final = optim_config.get("decay_final", 0.0)
  if start < 0 or end <= start or not 0.0 <= final <= 1.0:
    raise ValueError(f"the cosine schedule needs 0 <= decay_start < decay_iterations (0: "
                     f"train.num_steps = {num_steps}) and 0 <= decay_final <= 1; got "
                     f"decay_start={start}, decay_iterations={end}, decay_final={final}")
  def multiplier(t):
    progress = jnp.clip((t - start) / (end - start), 0.0, 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
  return multiplier


@SCHEDULES.register("step")
def step(optim_config, num_steps: int) -> Schedule:
  """optim.decay_factor ** (iteration // optim.decay_every)."""
  del num_steps
  every, factor = optim_config.get("decay_every", 0), optim_config.get("decay_factor", 0.5)
  if every < 1 or not 0.0 < factor <= 1.0:
    raise ValueError(f"the step schedule needs decay_every >= 1 and 0 < decay_factor <= 1; "
                     f"got decay_every={every}, decay_factor={factor}")
  return lambda t: jnp.asarray(factor, jnp.float32) ** (t // every)


def make_schedule(optim_config, num_steps: int) -> Optional[Schedule]:
  """iteration -> learning-rate multiplier of `optim_config.schedule` (None: constant);
  ValueError naming the choices or the bad option."""
  return SCHEDULES.get(optim_config.get("schedule", "constant"))(optim_config, num_steps)


def learning_rate(optim_config, network: str, num_steps: int = 0, d_steps: int = 1):
  """`network`'s learning rate for optax: the base `<network>_lr`, or a function of the
  optimizer's update count (D's count // d_steps is the iteration) under a schedule."""
  base = optim_config[f"{network}_lr"]
  schedule = make_schedule(optim_config, num_steps)
  if schedule is None:
    return base
  per_iteration = d_steps if network == "d" else 1
  return lambda count: base * schedule(count // per_iteration)


def scheduled_rates(optim_config, iteration: int, num_steps: int) -> Dict[str, float]:
  """{'g_lr', 'd_lr'}: both networks' learning rates in training iteration `iteration` under
  `optim_config.schedule` (for the metrics rows); {} for the constant schedule."""
  rates = {f"{network}_lr": learning_rate(optim_config, network, num_steps)
           for network in ("g", "d")}  # with d_steps 1 a rate's count is the iteration
  if not callable(rates["g_lr"]):
    return {}
  return {name: float(rate(jnp.int32(iteration))) for name, rate in rates.items()}


def make_constraint(constraint_config, network: str) -> Optional[optax.GradientTransformation]:
  """The Lipschitz projection `constraint_config.<network>` names, or None for ''."""
  name = constraint_config[network]
  if not name:
    return None
  factory = constraints.CONSTRAINTS.get(name)
  options = dict(constraint_config.get(name, {}))
  return factory(pattern=constraint_config.pattern, **options)


def make_optimizer(optim_config, network: str, constraint_config=None, num_steps: int = 0,
                   d_steps: int = 1) -> optax.GradientTransformation:
  """The optax chain for `network` ('g' or 'd'): its weight regulariser if any, the optimizer
  (at learning_rate's rate: `num_steps` and `d_steps` are the run's, for schedules), then its
  constraint if any."""
  if network not in ("g", "d"):
    raise ValueError(f"network must be 'g' or 'd', got {network!r}")
  factory = OPTIMIZERS.get(optim_config.name)
  lr = learning_rate(optim_config, network, num_steps, d_steps)
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
