"""What the benchmark scripts share: building a config's compiled train step."""

import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import data as data_lib, fed_step, parallel, train  # pylint: disable=g-import-not-at-top,wrong-import-position


def build(config, mesh, iterations_per_call: int = 1, feeder=None):
  """(compiled step, initial state, compile seconds, FLOPs per call) for `config`.

  The compiled step is f(state, batch). With `iterations_per_call` K > 1 it runs K
  iterations on the same batch in one `lax.scan` (one dispatch, no host round trip
  between them). With a `feeder` that selects batches on the devices (a DeviceFeeder)
  the selection is compiled in as training does it (gan_jax/fed_step.py): the step is
  f(state, feeder.device_data()) and every iteration, scanned ones too, trains on its
  own batch, iteration state.step's.
  """
  train.validate_config(config)
  parallel.check_batch_size(config.train.batch_size, mesh)
  replicated = parallel.replicated(mesh)
  shape, dtype = data_lib.example_spec(config.data)
  generator, discriminator = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  init = train.make_init(config, generator, discriminator, g_tx, d_tx)
  shardings = jax.tree.map(lambda _: replicated, jax.eval_shape(init))
  state = jax.jit(init, out_shardings=shardings)()
  example = jax.ShapeDtypeStruct(
      (config.train.d_steps, config.train.batch_size, *shape), dtype,
      sharding=parallel.batch_sharding(mesh, batch_axis=1))
  step = train.make_step(config, generator, discriminator, g_tx, d_tx)
  if feeder is not None and feeder.device_data() is not None:
    step, example = fed_step.fuse(step, feeder.select), feeder.device_data()
  if iterations_per_call > 1:
    single = step

    def step(state, images):  # pylint: disable=function-redefined
      state, metrics = jax.lax.scan(lambda s, _: single(s, images), state, None,
                                    length=iterations_per_call)
      return state, jax.tree.map(lambda m: m[-1], metrics)
  start = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=0, out_shardings=(shardings, replicated)).lower(
      state, example)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  # FLOPs of the program as lowered (before the backend rewrites it): on GPU the compiled
  # program's convolutions are cuDNN custom calls that XLA's cost analysis does not count.
  # A scan's body is counted once, so count one iteration and multiply.
  one = lowered if iterations_per_call == 1 else jax.jit(single).lower(state, example)
  try:
    cost = one.cost_analysis()
  except (NotImplementedError, AttributeError):
    cost = compiled.cost_analysis() if iterations_per_call == 1 else None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  flops *= iterations_per_call
  return compiled, state, compile_s, flops


def memory_gb(compiled) -> float:
  """Device memory the compiled call needs by XLA's analysis (arguments + outputs - donated
  aliases + temporaries), in GiB; NaN where the backend does not say."""
  try:
    m = compiled.memory_analysis()
    total = (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
             + m.temp_size_in_bytes)
    return round(total / 2**30, 3)
  except (AttributeError, TypeError, NotImplementedError):
    return float("nan")


def random_batch(config, mesh) -> jax.Array:
  """One random iteration batch on the devices (uint8 images, or float points for toy data)."""
  shape, dtype = data_lib.example_spec(config.data)
  shape = (config.train.d_steps, config.train.batch_size, *shape)
  rng = np.random.default_rng(0)
  values = (rng.integers(0, 256, shape, np.uint8) if dtype == np.uint8
            else rng.standard_normal(shape).astype(dtype))
  return jax.device_put(values, parallel.batch_sharding(mesh, batch_axis=1))
