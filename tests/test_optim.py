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
     r"0 <= decay_start < decay_iterations \(0: train.num_steps = 20\) and 0 <= decay_final"),
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
