"""The toy lab's engine: train one config on several seeds at once, and the quantities the
lectures' claims are stated in (empirical Lipschitz constants, D's optimum, divergences).

`train_seeds` runs exactly the computation `launch.py` runs for each seed (same
init, same batches from (seed, step), same step function), but vmapped over
seeds and scanned over iterations in one compiled call, so five seeds of a toy
GAN train in seconds. Tests and benchmarks/toy_lab.py use it; launch.py is
for single runs with checkpoints and plots.
"""

import os
from typing import Any, Callable, Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import data as data_lib
from gan_jax import latents, losses, models, rejection, sampling, train
from gan_jax.data import toy
from gan_jax.errors import UserError
from gan_jax.penalties import input_gradient_norms
from gan_jax.state import TrainState, create_state
from gan_jax.step import apply_in_train_mode


# XLA:CPU's default compilation (full backend optimisation, LLVM's expensive passes, the
# fusion emitters), which the lab's long runs compile with (jit_long_run), and from how
# many iterations a run counts as long.
_XLA_CPU_DEFAULTS = {"xla_backend_optimization_level": 3,
                     "xla_llvm_disable_expensive_passes": False,
                     "xla_cpu_use_fusion_emitters": True}
LONG_RUN = 500


def _xla_cpu_defaults() -> Dict[str, Any]:
  """The options of _XLA_CPU_DEFAULTS that XLA_FLAGS changes, and always the optimisation
  level: an XLA that has dropped a flag still compiles where XLA_FLAGS does not name it."""
  flags = os.environ.get("XLA_FLAGS", "")
  return {name: value for name, value in _XLA_CPU_DEFAULTS.items()
          if name == "xla_backend_optimization_level" or f"--{name}" in flags}


def jit_long_run(fn: Callable, num_steps: int) -> Callable:
  """jax.jit(fn) for a lab trainer scanning `num_steps` iterations of tiny networks. From
  LONG_RUN iterations such a program is execution-bound: on the CPU it is then compiled
  with XLA's default optimisation even where XLA_FLAGS lowers it for faster compiles (the
  test suite does), which runs it 4x faster there (measured: 3 seeds x 2,000 ring
  iterations, 12 s -> 3 s, for 1.4 s more compilation; under the suite's flags without the
  fusion emitters, another 1.3x). Shorter runs are compile-bound and keep XLA_FLAGS'
  setting."""
  long_cpu_run = num_steps >= LONG_RUN and jax.default_backend() == "cpu"
  return jax.jit(fn, compiler_options=_xla_cpu_defaults() if long_cpu_run else None)


def train_seeds(config, seeds: Sequence[int], num_steps: int = -1,
                state: TrainState = None) -> Tuple[TrainState, Dict[str, jax.Array]]:
  """(final states, per-iteration metrics) of `config` trained on toy data for every seed.

  Leaves of both carry a leading seed axis; metrics have (seeds, steps). Seed s
  is the run `launch.py` would make with config.seed = s. `num_steps` defaults
  to config.train.num_steps; pass `state` (stacked over seeds) to continue. A
  learning-rate schedule (config.optim.schedule) runs over config.train.num_steps
  iterations, as launch.py's run does, whatever `num_steps` this call trains.
  """
  mixture = data_lib.toy_mixture(config.data)
  if mixture is None:
    raise ValueError(f"train_seeds needs toy data (toy:NAME), got {config.data.source!r}")
  num_steps = config.train.num_steps if num_steps < 0 else num_steps
  generator, discriminator = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  step_fn = train.make_step(config, generator, discriminator, g_tx, d_tx)
  shape = data_lib.example_spec(config.data)[0]

  def run(seed, state):
    def body(state, _):
      batch = toy.toy_batch(mixture, seed, state.step, config.train.d_steps,
                            config.train.batch_size)
      return step_fn(state, batch)
    return jax.lax.scan(body, state, None, length=num_steps)

  seeds = jnp.asarray(seeds, jnp.uint32)
  if state is None:
    state = jax.vmap(lambda s: train.with_controllers(config, create_state(
        jax.random.PRNGKey(s), generator, discriminator, g_tx, d_tx,
        config.model.latent_dim, shape)))(seeds)
  return jit_long_run(jax.vmap(run), num_steps)(seeds, state)


def generate_seeds(config, states: TrainState, num: int = 2500, ema: bool = True) -> np.ndarray:
  """(seeds, num, *example_shape) samples of each seed's generator from the fixed latents
  that launch.py plots (config.seed's)."""
  generator, _ = train.make_models(config)
  z = sampling.fixed_latents(config.seed, num, config.model.latent_dim, config.model.latent_dist)
  params = states.ema_params if ema else states.g_params
  return np.asarray(jax.jit(jax.vmap(
      lambda p, s: sampling.generate(generator, p, s, z)))(params, states.g_stats))


def mode_metrics_seeds(config, states: TrainState, num: int = 2500, ema: bool = True,
                       within_stds: float = 3.0) -> Dict[str, np.ndarray]:
  """{'modes_covered', 'high_quality'}: one value per seed (toy.mode_metrics, a sample
  counting within `within_stds` of a mode) of the EMA generator's samples, or G's own
  with ema=False."""
  return samples_mode_metrics(config, generate_seeds(config, states, num, ema), within_stds)


def samples_mode_metrics(config, samples: np.ndarray,
                         within_stds: float = 3.0) -> Dict[str, np.ndarray]:
  """{'modes_covered', 'high_quality'}: one value per seed of `samples` (seeds, num, dim)
  against config's toy mixture (toy.mode_metrics with `within_stds`)."""
  mixture = data_lib.toy_mixture(config.data)
  rows = [toy.mode_metrics(s, mixture, within_stds=within_stds) for s in samples]
  return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def discriminator_fn(config, d_params: Any, d_stats: Any,
                     example_shape: Sequence[int] = None) -> Callable[[jax.Array], jax.Array]:
  """x -> D's logits at (d_params, d_stats) (eval mode: no statistics updated); the
  example shape defaults to config.data's."""
  example_shape = example_shape or data_lib.example_spec(config.data)[0]
  _, discriminator = models.build_models(config.model, example_shape)
  return lambda x: sampling.discriminator_logits(discriminator, d_params, d_stats, x)


def empirical_lipschitz(d_fn: Callable[[jax.Array], jax.Array], points: jax.Array) -> jax.Array:
  """max_i ||grad_x D(x_i)||: a lower bound on D's Lipschitz constant from `points`
  (D in eval mode, so each output depends on its own input only)."""
  return jnp.max(input_gradient_norms(d_fn, points))


def box_points(extent: float, per_axis: int = 101) -> jax.Array:
  """A per_axis x per_axis grid of 2-D points covering [-extent, extent]^2."""
  axis = jnp.linspace(-extent, extent, per_axis)
  return jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


# ---------------------------------------------------------------- 1-D theory --
# The lecture's claims about D's optimum and the JS divergence, on 1-D Gaussians
# where every quantity has a closed form or a numerical integral.


def affine_generator_params(mean: float, std: float) -> Dict[str, Any]:
  """Parameters of the depth-0 MLP generator (latent_dim 1) with output N(mean, std^2)
  for z ~ N(0, 1): x = std * z + mean."""
  return {"Dense_0": {"kernel": jnp.full((1, 1), std, jnp.float32),
                      "bias": jnp.full((1,), mean, jnp.float32)}}


def one_d_config(base_config, loss: str = "minimax", mean: float = 0.0, std: float = 1.0):
  """A copy of a toy config for the 1-D experiments: affine G (latent 1), data N(mean, std^2)."""
  config = base_config.copy_and_resolve_references()
  config.model.g_depth = 0
  config.model.latent_dim = 1
  config.model.latent_dist = "gaussian"
  config.loss.name = loss
  return config, toy.Mixture("normal1d", np.array([[mean]]), std)


def discriminator_trainer(config, mixture: toy.Mixture, num_steps: int):
  """A compiled f(seeds, g_params, states) -> states: `num_steps` D updates (the config's
  loss, optimizer, constraint and penalties) against a frozen generator with parameters
  `g_params` (None: each seed's initial G), from fresh states (None) or `states`
  (stacked over seeds); data from `mixture`. Reuse it to avoid recompiling."""
  generator, discriminator = models.build_models(config.model, (mixture.dim,))
  g_tx, d_tx = train.make_optimizers(config)
  step_fn = train.make_step(config, generator, discriminator, g_tx, d_tx)

  def run(seed, g_params, state):
    if state is None:
      state = train.with_controllers(config, create_state(
          jax.random.PRNGKey(seed), generator, discriminator, g_tx, d_tx,
          config.model.latent_dim, (mixture.dim,)))
      if g_params is not None:
        state = state.replace(g_params=g_params, ema_params=g_params)

    def body(state, _):
      real = toy.toy_batch(mixture, seed, state.step, 1, config.train.batch_size)[0]
      state, _ = step_fn.d_update(state, real, jax.random.fold_in(state.key, state.step))
      return state.replace(step=state.step + 1), None
    return jax.lax.scan(body, state, None, length=num_steps)[0]

  trainer = jit_long_run(jax.vmap(run, in_axes=(0, None, 0)), num_steps)
  return lambda seeds, g_params=None, states=None: trainer(
      jnp.asarray(seeds, jnp.uint32), g_params, states)


def fit_discriminator(config, mixture: toy.Mixture, g_params: Any, num_steps: int,
                      seeds: Sequence[int] = (0,), state: TrainState = None) -> TrainState:
  """States (stacked over `seeds`) whose D was trained for `num_steps` updates against a
  frozen generator with parameters `g_params` (None: each seed's initial G); pass the
  returned `state` to continue. See discriminator_trainer."""
  return discriminator_trainer(config, mixture, num_steps)(seeds, g_params, state)


def gaussian_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
  """N(mean, std^2) density at x."""
  return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def jensen_shannon(p: np.ndarray, q: np.ndarray, dx: float) -> float:
  """JSD(p || q) (nats) of two densities tabulated on a uniform grid with spacing dx."""
  m = 0.5 * (p + q)

  def kl(a):
    mask = a > 0
    return float(np.sum(a[mask] * np.log(a[mask] / m[mask])) * dx)
  return 0.5 * kl(p) + 0.5 * kl(q)


def generator_gradient_norm(config, state: TrainState, loss: str, real: jax.Array,
                            seed: int = 0) -> jax.Array:
  """||d g_loss / d g_params|| of `loss` at `state` with D fixed, on len(real) fresh
  latents (`real` feeds the losses whose G term looks at D(real))."""
  generator, discriminator = models.build_models(config.model, real.shape[1:])
  loss_fn = losses.get_loss(loss)
  z = jax.random.normal(jax.random.PRNGKey(seed), (len(real), config.model.latent_dim))
  real_logits, _ = apply_in_train_mode(discriminator, state.d_params, state.d_stats, real)

  def g_loss(g_params):
    fake, _ = apply_in_train_mode(generator, g_params, state.g_stats, z)
    logits, _ = apply_in_train_mode(discriminator, state.d_params, state.d_stats, fake)
    return loss_fn(real_logits, logits).g_loss

  return optax.tree.norm(jax.grad(g_loss)(state.g_params))


# ------------------------------------------------------------- experiments --
# Each returns the measured numbers; tests/test_toy_lab.py asserts the
# lectures' claims on them and benchmarks/toy_lab.py tabulates them.


def _seed(states: Any, i: int) -> Any:
  return jax.tree.map(lambda x: x[i], states)


def critic_history(config, seeds: Sequence[int], record_at: Sequence[int] = (200, 400, 800),
                   extent: float = 3.0) -> np.ndarray:
  """(len(record_at), seeds, 2): D's empirical Lipschitz constant (over a grid of the plane
  and 512 fakes) and E D(real) - E D(fake) after each number of D updates in `record_at`
  (multiples of the first) against the frozen initial G of a toy config (e.g. a
  Wasserstein critic with some constraint)."""
  mixture = data_lib.toy_mixture(config.data)
  chunk = record_at[0]
  if any(r % chunk for r in record_at):
    raise ValueError(f"record_at must be multiples of its first entry, got {record_at}")
  trainer = discriminator_trainer(config, mixture, chunk)
  real = mixture.sample(jax.random.PRNGKey(1), 2048)
  states, fakes, history = None, None, []
  for done in range(chunk, record_at[-1] + 1, chunk):
    states = trainer(seeds, None, states)
    if done not in record_at:
      continue
    if fakes is None:  # G is frozen: the same fakes at every record
      fakes = generate_seeds(config, states, 512, ema=False)
    row = []
    for i in range(len(seeds)):
      state = _seed(states, i)
      d_fn = discriminator_fn(config, state.d_params, state.d_stats)
      fake = jnp.asarray(fakes[i])
      points = jnp.concatenate([box_points(extent, 41), fake])
      row.append((float(empirical_lipschitz(d_fn, points)),
                  float(jnp.mean(d_fn(real)) - jnp.mean(d_fn(fake)))))
    history.append(row)
  return np.array(history)


def optimum_gap(base_config, seeds: Sequence[int], num_steps: int = 2000,
                g_mean: float = 1.5, g_std: float = 0.5) -> np.ndarray:
  """(seeds, 4): how close a minimax D trained against a frozen G = N(g_mean, g_std^2)
  on data N(0, 1) gets to its optimum: [mean |D - D*| under the data and G mixture,
  max |D - D*| where both densities exceed 0.02, V(G, D), -2 log 2 + 2 JSD]."""
  config, data = one_d_config(base_config, "minimax", 0.0, 1.0)
  states = fit_discriminator(config, data, affine_generator_params(g_mean, g_std), num_steps,
                             seeds)
  x = np.linspace(-4.0, 4.0, 2001)
  dx = x[1] - x[0]
  p_data, p_g = gaussian_pdf(x, 0.0, 1.0), gaussian_pdf(x, g_mean, g_std)
  d_star = p_data / (p_data + p_g)
  overlap = np.minimum(p_data, p_g) > 0.02
  v_star = -2 * np.log(2) + 2 * jensen_shannon(p_data, p_g, dx)
  rows = []
  for i in range(len(seeds)):
    state = _seed(states, i)
    d_fn = discriminator_fn(config, state.d_params, state.d_stats, (1,))
    logits = d_fn(jnp.asarray(x[:, None], jnp.float32))
    error = np.abs(np.asarray(jax.nn.sigmoid(logits), np.float64) - d_star)
    v = np.sum(p_data * np.asarray(jax.nn.log_sigmoid(logits), np.float64)
               + p_g * np.asarray(jax.nn.log_sigmoid(-logits), np.float64)) * dx
    rows.append((np.sum(error * (p_data + p_g) / 2) * dx, np.max(error[overlap]), v, v_star))
  return np.array(rows)


def disjoint_supports(base_config, seeds: Sequence[int], thetas: Sequence[float] = (4.0, 1.0, 0.25),
                      std: float = 0.02, d_steps: int = 500, critic_steps: int = 1000) -> np.ndarray:
  """(thetas, seeds, 5): data N(0, std^2) against a frozen G = N(theta, std^2) (disjoint
  supports for theta >> std): [theta, JSD estimate from a trained minimax D, W1 estimate
  from a trained WGAN-GP critic, ||grad_G|| of the minimax G loss, of the non-saturating
  one] (the gradients against the minimax D)."""
  config, data = one_d_config(base_config, "minimax", 0.0, std)
  w_config, _ = one_d_config(base_config, "wasserstein", 0.0, std)
  w_config.penalty.use = "wgan_gp"
  d_trainer = discriminator_trainer(config, data, d_steps)
  critic_trainer = discriminator_trainer(w_config, data, critic_steps)
  out = []
  for theta in thetas:
    g_params = affine_generator_params(theta, std)
    states = d_trainer(seeds, g_params)
    w_states = critic_trainer(seeds, g_params)
    real = data.sample(jax.random.PRNGKey(7), 4096)
    fake = theta + std * jax.random.normal(jax.random.PRNGKey(8), (4096, 1))
    rows = []
    for i in range(len(seeds)):
      state, w_state = _seed(states, i), _seed(w_states, i)
      d_fn = discriminator_fn(config, state.d_params, state.d_stats, (1,))
      critic = discriminator_fn(w_config, w_state.d_params, w_state.d_stats, (1,))
      # V(G, D) = E log D(real) + E log(1 - D(fake)) is minus the minimax D loss.
      v = -float(losses.minimax(d_fn(real), d_fn(fake)).d_loss)
      jsd = (v + 2 * np.log(2)) / 2
      w1 = float(jnp.mean(critic(real)) - jnp.mean(critic(fake)))
      rows.append((theta, jsd, w1,
                   float(generator_gradient_norm(config, state, "minimax", real)),
                   float(generator_gradient_norm(config, state, "non_saturating", real))))
    out.append(rows)
  return np.array(out)


def rejection_gain(config, seeds: Sequence[int], num_steps: int, fine_tune_steps: int,
                   **options) -> np.ndarray:
  """(seeds, 2, 5): G's samples corrected by D (gan_jax/rejection.py) on a toy config: each
  seed trains `num_steps` iterations, its D is fine-tuned for `fine_tune_steps` updates
  against the frozen G-EMA (tune_against_ema), then rejection_rows(**options)."""
  states, _ = train_seeds(config, seeds, num_steps)
  states = tune_against_ema(config, states, seeds, fine_tune_steps)
  return rejection_rows(config, states, seeds, **options)


def tune_against_ema(config, states: TrainState, seeds: Sequence[int],
                     num_steps: int) -> TrainState:
  """`states` (stacked over `seeds`) with G set to the G-EMA, frozen, and D trained
  `num_steps` more updates against it (0: D as it is): the D that corrects the samples,
  D*'s estimate for the generator that is sampled. Call again to tune further."""
  states = states.replace(g_params=states.ema_params)
  if not num_steps:
    return states
  mixture = data_lib.toy_mixture(config.data)
  return discriminator_trainer(config, mixture, num_steps)(seeds, None, states)


def rejection_rows(config, states: TrainState, seeds: Sequence[int], num: int = 2500,
                   method: str = "rejection", start: str = "generator",
                   **options) -> np.ndarray:
  """(seeds, 2, 5) for `states` (stacked over `seeds`): rows `num` samples of each G-EMA
  from fresh latents, and `num` corrected with the state's D by `method`: 'rejection'
  (rejection.rejection_sample with `options`: burn_in, batch, log_m_quantile,
  gamma_quantile; rounds of 25,000 by default) or 'mh' (rejection.metropolis_hastings,
  `options`: steps), its chains started at G's proposals (`start` 'generator') or at `num`
  fresh points of the mixture ('data', MH-GAN's; MH only); columns modes covered,
  high-quality fraction, mode imbalance (toy.mode_imbalance), acceptance rate (1 for the
  plain samples; MH: of the moves), proposals of G per sample (1 for the plain samples).
  UserError naming the seed whose rejection keeps too few.
  """
  if method not in ("rejection", "mh"):
    raise ValueError(f"unknown method {method!r}; choose from: mh, rejection")
  if start not in ("generator", "data"):
    raise ValueError(f"unknown MH start {start!r}; choose from: data, generator")
  if start == "data" and method != "mh":
    raise ValueError("start='data' starts MH chains at real points (method='mh'); "
                     "rejection sampling only draws from G")
  mixture = data_lib.toy_mixture(config.data)
  generator, _ = train.make_models(config)
  sample_latent = latents.get_latent_sampler(config.model.latent_dist)
  latent_dim = config.model.latent_dim

  def measure(x, rate, cost):
    metrics = toy.mode_metrics(x, mixture)
    return [metrics["modes_covered"], metrics["high_quality"], toy.mode_imbalance(x, mixture),
            rate, cost]

  out = []
  for i, seed in enumerate(seeds):
    state = _seed(states, i)
    propose = jax.jit(lambda key, n, state=state: sampling.generate(
        generator, state.ema_params, state.g_stats, sample_latent(key, (n, latent_dim))),
                      static_argnums=1)
    score = jax.jit(discriminator_fn(config, state.d_params, state.d_stats))
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x647273)  # "drs"
    plain = np.asarray(propose(jax.random.fold_in(key, 1), num))
    if method == "mh":
      starts = (None if start == "generator"
                else mixture.sample(jax.random.fold_in(key, 3), num))
      kept = rejection.metropolis_hastings(jax.random.fold_in(key, 2), propose, score, num,
                                           start=starts, **options)
      cost = kept.proposals_per_sample
    else:
      try:
        kept = rejection.rejection_sample(jax.random.fold_in(key, 2), propose, score, num,
                                          **{"batch": 25000, **options})
      except UserError as e:
        raise UserError(f"seed {seed}: {e}") from None
      cost = kept.proposed / num
    out.append([measure(plain, 1.0, 1.0), measure(kept.samples, kept.acceptance_rate, cost)])
  return np.array(out)
