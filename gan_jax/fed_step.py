"""The compiled train step together with how its batch arrives.

A feeder that delivers batches (host, stream) hands each iteration's batch to
the jitted step. A feeder whose batches are a pure function of arrays already
on the devices (DeviceFeeder: `device_data()`, `select(data, step)`; see
data/feeding.py) is compiled into the step instead: the call takes (state,
data), selects iteration `state.step`'s batch from `data` itself and trains
on it, so each iteration is one device call with no host work and the batch
never round-trips through its own program. The selection is the very function
`feeder.batch(step)` jits, so the batches, and hence the run, are bit-identical
either way (tests/test_feeding.py checks the train states).

The state is donated, the data never is (it is read again every iteration).
"""

from typing import Any, Callable, Tuple

import jax

from gan_jax.data.feeding import Feeder

StepFn = Callable[[Any, Any], Tuple[Any, Any]]  # (state, batch) -> (state, metrics)


def fuse(step_fn: StepFn, select: Callable[[Any, jax.Array], Any]) -> StepFn:
  """(state, data) -> step_fn(state, select(data, state.step)): the step selecting its own
  batch, iteration state.step's, from the feeder's device data (pure; jit it)."""
  def fused(state, data):
    return step_fn(state, select(data, state.step))
  return fused


class FedStep:
  """The compiled train step of a run and its feeder: `fed(state, step)` trains iteration
  `step` (which must equal state.step), `fed.fused` says whether the feeder's selection is
  compiled in, `fed.last_batch(step)` gives the batch of the iteration just run."""

  def __init__(self, step_fn: StepFn, feeder: Feeder, state: Any, batch_spec: Any,
               out_shardings: Any):
    self.feeder = feeder
    self.data = feeder.device_data()
    self.fused = self.data is not None
    self._batch = None
    jitted = jax.jit(fuse(step_fn, feeder.select) if self.fused else step_fn,
                     donate_argnums=0, out_shardings=out_shardings)
    self.compiled = jitted.lower(state, self.data if self.fused else batch_spec).compile()

  def __call__(self, state: Any, step: int) -> Tuple[Any, Any]:
    """(new state, metrics) of iteration `step` (= state.step) of the donated `state`."""
    if self.fused:
      return self.compiled(state, self.data)
    self._batch = self.feeder.batch(step)
    return self.compiled(state, self._batch)

  def last_batch(self, step: int) -> Any:
    """Iteration `step`'s batch, the one the last call trained on: kept when the feeder
    delivered it, selected again (one extra device call) when fused."""
    return self.feeder.batch(step) if self.fused else self._batch
