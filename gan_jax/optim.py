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

The linear and cosine schedules decay over a window; other hyperparameters can anneal along
the same decay (`annealed`: base + (final - base) x the fraction of the decay done), as
R3GAN anneals gamma and Adam's beta2 with its rate: both networks' beta2 to
`optim.beta2_final` here (Adam then runs under optax.inject_hyperparams, whose state holds
the count), a penalty's weight in train.make_penalties.
"""

from typing import Callable, Dict, Optional, Sequence, Tuple

import jax.numpy as jnp
import optax

from gan_jax import constraints, regularisers
from gan_jax.registry import Registry

OptimizerFactory = Callable[[float, Sequence[float]], optax.GradientTransformation]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
BETA_OPTIMIZERS = ("adam",)  # the optimizers that read optim.{g,d}_betas


@OPTIMIZERS.register("adam")
def adam(lr: float, betas: Sequence[float]) -> optax.GradientTransformation:
  """Adam with (b1, b2) = betas; b2 may be a function of the update count (optim.beta2_final)."""
  b1, b2 = betas
  if callable(b2):
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2)
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


def _decay_window(optim_config, num_steps: int, schedule: str) -> Tuple[int, int]:
  """(decay_start, decay_iterations) of `schedule` (decay_iterations 0: the run's num_steps);
  ValueError unless 0 <= start < end."""
  start = optim_config.get("decay_start", 0)
  end = optim_config.get("decay_iterations", 0) or num_steps
  if start < 0 or end <= start:
    raise ValueError(f"the {schedule} schedule needs 0 <= decay_start < decay_iterations (0: "
                     f"train.num_steps = {num_steps}); got decay_start={start}, "
                     f"decay_iterations={end}")
  return start, end


def _linear_progress(start: int, end: int) -> Schedule:
  return lambda t: jnp.clip((t - start) / (end - start), 0.0, 1.0)


def _cosine_progress(start: int, end: int) -> Schedule:
  linear = _linear_progress(start, end)
  return lambda t: 0.5 * (1.0 - jnp.cos(jnp.pi * linear(t)))


# The schedules that decay along a window: iteration -> the fraction of the decay done.
_PROGRESS = {"linear": _linear_progress, "cosine": _cosine_progress}


@SCHEDULES.register("linear")
def linear(optim_config, num_steps: int) -> Schedule:
  """1 until optim.decay_start, then linearly to 0 at optim.decay_iterations (0: the run's
  train.num_steps), 0 after."""
  progress = _linear_progress(*_decay_window(optim_config, num_steps, "linear"))
  return lambda t: 1.0 - progress(t)


@SCHEDULES.register("cosine")
def cosine(optim_config, num_steps: int) -> Schedule:
  """1 until optim.decay_start, then down a half cosine to optim.decay_final at
  optim.decay_iterations (0: the run's train.num_steps), decay_final after (R3GAN's decay)."""
  progress = _cosine_progress(*_decay_window(optim_config, num_steps, "cosine"))
  final = optim_config.get("decay_final", 0.0)
  if not 0.0 <= final <= 1.0:
    raise ValueError(f"the cosine schedule needs 0 <= decay_final <= 1; got {final}")
  return lambda t: 1.0 - (1.0 - final) * progress(t)


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


def annealed(base: float, final: float, optim_config, num_steps: int, name: str):
  """`base` where `final` < 0 (not annealed); else iteration -> the value moving from `base`
  to `final` as optim.schedule's decay progresses (linear or cosine, over its window: the
  learning rates' curve, rescaled; R3GAN anneals gamma and Adam's beta2 so). ValueError,
  naming the field `name`, under a schedule without a window."""
  if final < 0:
    return base
  schedule = optim_config.get("schedule", "constant")
  if schedule not in _PROGRESS:
    raise ValueError(f"{name}={final} anneals along optim.schedule's decay; "
                     f"optim.schedule={schedule!r} has none: use {' or '.join(_PROGRESS)}")
  progress = _PROGRESS[schedule](*_decay_window(optim_config, num_steps, schedule))
  return lambda t: base + (final - base) * progress(t)


def learning_rate(optim_config, network: str, num_steps: int = 0, d_steps: int = 1):
  """`network`'s learning rate for optax: the base `<network>_lr`, or a function of the
  optimizer's update count (D's count // d_steps is the iteration) under a schedule."""
  base = optim_config[f"{network}_lr"]
  schedule = make_schedule(optim_config, num_steps)
  if schedule is None:
    return base
  return _per_update(lambda t: base * schedule(t), network, d_steps)


def _per_update(of_iteration: Callable, network: str, d_steps: int) -> Callable:
  """`of_iteration` as a function of `network`'s update count (D's // d_steps)."""
  per_iteration = d_steps if network == "d" else 1
  return lambda count: of_iteration(count // per_iteration)


def beta2(optim_config, network: str, num_steps: int = 0, d_steps: int = 1):
  """`network`'s Adam beta2 for optax: `<network>_betas[1]`, or where optim.beta2_final is
  >= 0 a function of the update count annealing it to beta2_final (R3GAN's 0.9 -> 0.99)."""
  base, final = optim_config[f"{network}_betas"][1], optim_config.get("beta2_final", -1.0)
  value = annealed(base, final, optim_config, num_steps, "optim.beta2_final")
  if not callable(value):
    return value
  if optim_config.name not in BETA_OPTIMIZERS:
    raise ValueError(f"optim.beta2_final: optim.name={optim_config.name!r} has no beta2 "
                     f"(those with one: {', '.join(BETA_OPTIMIZERS)})")
  if not 0.0 <= final < 1.0:
    raise ValueError(f"optim.beta2_final must be in [0, 1) (or -1: constant), got {final}")
  return _per_update(value, network, d_steps)


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
  betas = (betas[0], beta2(optim_config, network, num_steps, d_steps))
  chain = [factory(lr, betas)]
  orthogonal = optim_config.get(f"{network}_orthogonal_reg", 0.0)
  if orthogonal:
    pattern = constraints.KERNELS if constraint_config is None else constraint_config.pattern
    chain.insert(0, regularisers.orthogonal_regularisation(orthogonal, pattern))
  constraint = None if constraint_config is None else make_constraint(constraint_config, network)
  if constraint is not None:
    chain.append(constraint)
  return chain[0] if len(chain) == 1 else optax.chain(*chain)
