"""The compiled train step together with how its batch arrives.

A feeder that delivers batches (host, stream) hands each iteration's batch to
the jitted step. A feeder whose batches are a pure function of arrays already
on the devices (DeviceFeeder: `device_data()`, `select(data, step)`; see
data/feeding.py; ToyFeeder, whose draw needs no arrays) is compiled into the step
instead: the call takes (state,
data), selects iteration `state.step`'s batch from `data` itself and trains
on it, so each iteration is one device call with no host work and the batch
never round-trips through its own program. The selection is the very function
`feeder.batch(step)` jits, so the batches, and hence the run, are bit-identical
either way (tests/test_feeding.py checks the train states).

The state is donated, the data never is (it is read again every iteration).

Several iterations per call (`iterations_per_call` K > 1, compiled-in feeders only):
a second program runs K fused iterations in one lax.scan, so the host dispatches
once per K iterations (benchmarks/README.md: +44% at batch 128 on an H100). The
training loop calls it for windows of K iterations with nothing due inside
(train.py); its metrics come stacked, one row per iteration.
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


def scan_iterations(step_fn: StepFn, length: int) -> StepFn:
  """(state, data) -> `length` iterations of step_fn(state, data) in one lax.scan, with
  their metrics stacked along a leading axis (pure; jit it)."""
  def scanned(state, data):
    return jax.lax.scan(lambda s, _: step_fn(s, data), state, None, length=length)
  return scanned


class FedStep:
  """The compiled train step of a run and its feeder: `fed(state, step)` trains iteration
  `step` (which must equal state.step), `fed.many(state)` the next `iterations_per_call`
  iterations at once (fused feeders), `fed.fused` says whether the feeder's selection is
  compiled in, `fed.last_batch(step)` gives the batch of iteration `step` again."""

  def __init__(self, step_fn: StepFn, feeder: Feeder, state: Any, batch_spec: Any,
               out_shardings: Any, iterations_per_call: int = 1):
    self.feeder = feeder
    self.data = feeder.device_data()
    self.fused = self.data is not None
    self.iterations_per_call = iterations_per_call
    self._batch = None
    if iterations_per_call < 1:
      raise ValueError(f"iterations_per_call must be >= 1, got {iterations_per_call}")
    if iterations_per_call > 1 and not self.fused:
      raise ValueError(
          f"{iterations_per_call} iterations per call need batches selected on the devices "
          f"(image data with data.feed=device); this run's feeder is {type(feeder).__name__}")
    single = fuse(step_fn, feeder.select) if self.fused else step_fn
    jitted = jax.jit(single, donate_argnums=0, out_shardings=out_shardings)
    self.compiled = jitted.lower(state, self.data if self.fused else batch_spec).compile()
    self.compiled_many = None
    if iterations_per_call > 1:
      self.compiled_many = jax.jit(
          scan_iterations(single, iterations_per_call), donate_argnums=0,
          out_shardings=out_shardings).lower(state, self.data).compile()

  def many(self, state: Any) -> Tuple[Any, Any]:
    """(new state, metrics stacked over iterations) of the `iterations_per_call` iterations
    from state.step of the donated `state`."""
    if self.compiled_many is None:
      raise ValueError("FedStep.many needs iterations_per_call > 1")
    return self.compiled_many(state, self.data)

  def __call__(self, state: Any, step: int) -> Tuple[Any, Any]:
    """(new state, metrics) of iteration `step` (= state.step) of the donated `state`."""
    if self.fused:
      return self.compiled(state, self.data)
    self._batch = self.feeder.batch(step)
    return self.compiled(state, self._batch)

  def last_batch(self, step: int) -> Any:
    """Iteration `step`'s batch, that of the last iteration run: kept when the feeder
    delivered it, selected again (one extra device call) when fused."""
    return self.feeder.batch(step) if self.fused else self._batch
