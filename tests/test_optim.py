"""Learning-rate schedules (gan_jax/optim.py): their curves, the rates the optimizers apply,
their errors, and a run whose rate reaches 0 stopping its networks and logging its rates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import common, toy_ring
from gan_jax import optim, train
from gan_jax.errors import ConfigError

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def optim_config(**fields):
  config = common.optim(lr=0.1)
  config.update(fields)
  return config


def curve(config, iterations, num_steps=0):
  schedule = optim.make_schedule(config, num_steps)
  return [float(schedule(jnp.int32(t))) for t in iterations]


def test_schedules_by_hand():
  assert optim.make_schedule(optim_config(), 100) is None  # constant: nothing to schedule
  linear = optim_config(schedule="linear", decay_start=2, decay_iterations=6)
  np.testing.assert_allclose(curve(linear, [0, 2, 3, 4, 6, 9]), [1, 1, 0.75, 0.5, 0, 0])
  to_the_end = optim_config(schedule="linear")  # decay_iterations 0: the run's num_steps
  np.testing.assert_allclose(curve(to_the_end, [0, 5, 10], num_steps=10), [1, 0.5, 0])
  stepped = optim_config(schedule="step", decay_every=3, decay_factor=0.5)
  np.testing.assert_allclose(curve(stepped, [0, 2, 3, 6, 7]), [1, 1, 0.5, 0.25, 0.25])
  # Half a cosine from 1 to decay_final: at a quarter of the way 0.25 + 0.75 (1 + cos(pi/4))
  # / 2 = 0.890165, halfway the mean of the ends, three quarters 0.359835.
  cosine = optim_config(schedule="cosine", decay_start=2, decay_iterations=10, decay_final=0.25)
  np.testing.assert_allclose(curve(cosine, [0, 2, 4, 6, 8, 10, 15]),
                             [1, 1, 0.890165, 0.625, 0.359835, 0.25, 0.25], rtol=1e-5)
  np.testing.assert_allclose(curve(optim_config(schedule="cosine"), [0, 5, 10], num_steps=10),
                             [1, 0.5, 0], atol=1e-6)  # decay_final 0, to the run's end


def test_annealed_values_follow_the_decay_by_hand():
  """base + (final - base) x the fraction of the decay done: R3GAN's gamma 2 -> 0.2 along the
  cosine (a quarter of the way (1 - cos(pi/4)) / 2 = 0.146447 done: 1.736396), beta2 0.9 ->
  0.99 along the linear schedule; a final < 0 leaves the base; other schedules refuse."""
  cosine = optim_config(schedule="cosine", decay_start=2, decay_iterations=10, decay_final=0.25)
  gamma = optim.annealed(2.0, 0.2, cosine, 0, "penalty.r1.weight_final")
  np.testing.assert_allclose([float(gamma(jnp.int32(t))) for t in (0, 2, 4, 6, 8, 10, 15)],
                             [2, 2, 1.736396, 1.1, 0.463604, 0.2, 0.2], rtol=1e-5)
  linear = optim_config(schedule="linear", decay_start=2, decay_iterations=6)
  b2 = optim.annealed(0.9, 0.99, linear, 0, "optim.beta2_final")
  np.testing.assert_allclose([float(b2(jnp.int32(t))) for t in (0, 3, 6, 9)],
                             [0.9, 0.9225, 0.99, 0.99], rtol=1e-6)
  assert optim.annealed(2.0, -1.0, cosine, 0, "x") == 2.0
  for schedule in ("constant", "step"):
    with pytest.raises(ValueError, match=f"penalty.r1.weight_final=0.2 anneals along "
                       f"optim.schedule's decay; optim.schedule='{schedule}' has none: use "
                       "linear or cosine"):
      optim.annealed(2.0, 0.2, optim_config(schedule=schedule, decay_every=1), 0,
                     "penalty.r1.weight_final")


def test_adam_with_an_annealed_beta2_is_adam_with_that_beta2_at_each_update():
  """Hand-computed Adam (bias corrections with the update's own beta2, as optax and PyTorch
  compute them) for D's updates, two per iteration, under beta2 0.9 -> 0.99 over 2
  iterations: beta2 0.9, 0.9, 0.945, 0.945, 0.99, 0.99."""
  config = optim_config(schedule="linear", decay_iterations=2, beta2_final=0.99,
                        d_betas=(0.5, 0.9))
  tx = optim.make_optimizer(config, "d", num_steps=100, d_steps=2)
  grads = [1.0, -2.0, 0.5, 3.0, -1.0, 2.0]
  param, state = jnp.zeros(()), tx.init(jnp.zeros(()))
  m = v = expected = 0.0
  lr = 0.1 * np.array([1, 1, 0.5, 0.5, 0, 0])  # the linear rate, per iteration
  for k, (g, b2) in enumerate(zip(grads, [0.9, 0.9, 0.945, 0.945, 0.99, 0.99])):
    updates, state = tx.update(jnp.float32(g), state, param)
    param = optax.apply_updates(param, updates)
    m, v = 0.5 * m + 0.5 * g, b2 * v + (1 - b2) * g * g
    expected -= lr[k] * (m / (1 - 0.5**(k + 1))) / (np.sqrt(v / (1 - b2**(k + 1))) + 1e-8)
    np.testing.assert_allclose(float(param), expected, rtol=1e-5)
  assert float(state.hyperparams["b2"]) == pytest.approx(0.99)
  # G takes one update per iteration, from its own betas' beta2 (0.999) to the same final.
  assert optim.beta2(config, "g", 100)(jnp.int32(1)) == pytest.approx(0.9945)
  assert optim.beta2(optim_config(), "g", 100) == 0.999  # not annealed: the number itself


def test_an_ema_half_life_gives_the_decay_by_hand():
  """ema.half_life_images H: decay 0.5 ** (batch / H) per iteration (10k images at batch 64:
  0.995574); annealed 0 -> 500k images along a cosine over 10 iterations, 0 (no averaging)
  at the start and 0.5 ** (64 / 250,000) = 0.999823 halfway; ema.decay where both are
  off; refused values."""
  config = toy_ring.get_config()
  config.train.update(batch_size=64, num_steps=10)
  assert train.make_ema_decay(config) == config.ema.decay
  config.ema.half_life_images = 10_000.0
  assert train.make_ema_decay(config) == pytest.approx(0.995574, abs=1e-6)
  config.ema.update(half_life_images=0.0, half_life_final=500_000.0)
  config.optim.schedule = "cosine"
  decay = train.make_ema_decay(config)
  np.testing.assert_allclose([float(decay(jnp.int32(t))) for t in (0, 5, 10)],
                             [0.0, 0.999823, 0.5 ** (64 / 500_000)], rtol=1e-6)
  config.ema.rampup = False
  assert train.scheduled_values(config, 5)["ema_decay"] == pytest.approx(0.999823, abs=1e-6)
  config.ema.half_life_images = -1.0
  with pytest.raises(ConfigError, match=r"config.ema.half_life_images must be >= 0 \(0: "
                     r"ema.decay\), got -1.0"):
    train.validate_config(config)
  config.ema.half_life_images, config.optim.schedule = 0.0, "constant"
  with pytest.raises(ConfigError, match="config.ema.half_life_final=500000.0 anneals along "
                     "optim.schedule's decay; optim.schedule='constant' has none"):
    train.validate_config(config)


def sgd_steps(config, network, count, d_steps=1):
  """The rate each of `count` SGD updates (gradient 1, from 0) applied."""
  tx = optim.make_optimizer(config, network, num_steps=100, d_steps=d_steps)
  param, path = jnp.zeros(()), []
  state = tx.init(param)
  for _ in range(count):
    updates, state = tx.update(jnp.ones(()), state, param)
    param = optax.apply_updates(param, updates)
    path.append(float(param))
  return -np.diff([0.0] + path)  # the rate of each update


def test_d_follows_the_iteration_not_its_update_count():
  """G takes one update per iteration, D d_steps: under a step schedule halving every
  iteration, D's two updates of an iteration share that iteration's rate."""
  config = optim_config(name="sgd", schedule="step", decay_every=1, decay_factor=0.5)
  np.testing.assert_allclose(sgd_steps(config, "g", 3), [0.1, 0.05, 0.025], rtol=1e-6)
  np.testing.assert_allclose(sgd_steps(config, "d", 6, d_steps=2),
                             [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-6)


def test_the_constant_schedule_keeps_the_optimizer_state_of_a_plain_rate():
  """So checkpoints from before schedules existed still restore."""
  params = {"w": jnp.zeros(3)}
  plain = common.optim()
  for name in ("schedule", "decay_start", "decay_iterations", "decay_final", "decay_every",
               "decay_factor"):
    del plain[name]
  for network in ("g", "d"):
    a = optim.make_optimizer(plain, network).init(params)
    b = optim.make_optimizer(common.optim(), network, num_steps=10, d_steps=2).init(params)
    assert jax.tree.structure(a) == jax.tree.structure(b)


@pytest.mark.parametrize("fields, message", [
    ({"schedule": "cosin"}, "config.optim.schedule: unknown learning-rate schedule 'cosin'; "
                            "choose from: constant, cosine, linear, step"),
    ({"schedule": "cosine", "decay_final": 1.5}, "config.optim: the cosine schedule needs "
     r"0 <= decay_final <= 1; got 1.5"),
    ({"schedule": "cosine", "decay_start": 20},
     "config.optim: the cosine schedule needs 0 <= decay_start < decay_iterations "
     r"\(0: train.num_steps = 20\); got decay_start=20, decay_iterations=20"),
    ({"beta2_final": 0.99}, "config.optim: optim.beta2_final=0.99 anneals along "
     "optim.schedule's decay; optim.schedule='constant' has none"),
    ({"schedule": "cosine", "beta2_final": 1.0}, r"config.optim: optim.beta2_final must be in "
     r"\[0, 1\) \(or -1: constant\), got 1.0"),
    ({"schedule": "cosine", "beta2_final": 0.99, "name": "sgd"}, "config.optim: "
     "optim.beta2_final: optim.name='sgd' has no beta2 \\(those with one: adam\\)"),
    ({"schedule": "linear", "decay_start": 30, "decay_iterations": 0},
     "config.optim: the linear schedule needs 0 <= decay_start < decay_iterations "
     r"\(0: train.num_steps = 20\); got decay_start=30, decay_iterations=20"),
    ({"schedule": "step"}, "config.optim: the step schedule needs decay_every >= 1"),
    ({"schedule": "step", "decay_every": 5, "decay_factor": 0.0}, "0 < decay_factor <= 1"),
])
def test_bad_schedules_are_config_errors(fields, message):
  config = toy_ring.get_config("smoke")
  config.optim.update(fields)
  with pytest.raises(ConfigError, match=message):
    train.validate_config(config)


def test_a_run_stops_where_the_linear_rate_reaches_zero_and_logs_its_rates(tmp_path):
  """The ring's smoke run (20 iterations) with a linear schedule ending at iteration 10:
  both networks move until then and not after (each update scaled by 0; checkpoints every
  5), and the metrics rows at steps 10 and 20 carry the rates of iterations 9 and 19."""
  from test_checkpoint import abstract_of  # pylint: disable=g-import-not-at-top
  from test_train import read_metrics  # pylint: disable=g-import-not-at-top
  from gan_jax.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  config = toy_ring.get_config("smoke")  # 20 iterations, logged every 10
  config.log.diagnostics = False
  config.checkpoint.update(every=5, keep=0)
  config.optim.update(schedule="linear", decay_iterations=10, g_lr=1e-3, d_lr=4e-3)
  final = train.train_and_evaluate(config, str(tmp_path))
  checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
  assert checkpointer.all_steps() == [5, 10, 15, 20]
  saved = {step: checkpointer.restore(abstract_of(final), step)[0] for step in (5, 10, 20)}
  for name in ("g_params", "d_params"):
    def leaves(step, name=name):
      return [np.asarray(x) for x in jax.tree.leaves(getattr(saved[step], name))]
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(5), leaves(10)))
    assert all(np.array_equal(a, b) for a, b in zip(leaves(10), leaves(20)))
  rows = read_metrics(tmp_path)
  assert [r["step"] for r in rows] == [10, 20]
  assert rows[0]["g_lr"] == pytest.approx(1e-3 * (10 - 9) / 10)
  assert rows[0]["d_lr"] == pytest.approx(4e-3 * (10 - 9) / 10)
  assert rows[1]["g_lr"] == rows[1]["d_lr"] == 0.0
  assert optim.scheduled_rates(common.optim(), 5, 20) == {}  # a plain run logs no rates


def test_an_annealing_run_logs_its_values_and_resumes_exactly(tmp_path):
  """The ring's smoke run with R3GAN's annealing (rate, R1 weight and beta2 on one cosine
  over 8 iterations): stopped after 3 and rerun to 8, it ends bit-identical to a run of 8
  (the annealed Adam's state, hyperparameters included, is in the checkpoint), and the
  metrics rows carry the annealed values, the last row those of iteration 7, where
  a = (1 - cos(7 pi / 8)) / 2 = 0.9619398 of the decay is done."""
  from test_step import same  # pylint: disable=g-import-not-at-top
  from test_train import (  # pylint: disable=g-import-not-at-top
      read_metrics, train_straight_and_resumed)
  config = toy_ring.get_config("smoke")
  config.log.update(every=4, diagnostics=False)
  config.penalty.use = "r1"
  config.penalty.r1.update(weight=2.0, weight_final=0.2)
  config.optim.update(schedule="cosine", decay_iterations=8, decay_final=0.25,
                      beta2_final=0.99, g_betas=(0.0, 0.9), d_betas=(0.0, 0.9))
  straight, resumed = train_straight_and_resumed(config, tmp_path, 8, 3)
  assert same(straight, resumed)
  rows = read_metrics(tmp_path / "straight")  # (the first part logs its last step, 3, too)
  assert rows == [r for r in read_metrics(tmp_path / "resumed") if r["step"] != 3]
  a = 0.9619398
  assert rows[-1]["step"] == 8 and rows[-1]["r1_weight"] == pytest.approx(2 - 1.8 * a)
  assert rows[-1]["g_beta2"] == rows[-1]["d_beta2"] == pytest.approx(0.9 + 0.09 * a)
  assert rows[-1]["g_lr"] == pytest.approx(config.optim.g_lr * (1 - 0.75 * a))
