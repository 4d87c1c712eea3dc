"""What the benchmark scripts share: building a config's compiled train step."""

import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import data as data_lib, parallel, train  # pylint: disable=g-import-not-at-top,wrong-import-position


def build(config, mesh):
  """(compiled step, initial state, compile seconds, XLA's FLOPs per iteration) for `config`."""
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
  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=0, out_shardings=(shardings, replicated)).lower(
      state, example).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  return compiled, state, compile_s, flops


def random_batch(config, mesh) -> jax.Array:
  """One random iteration batch on the devices (uint8 images, or float points for toy data)."""
  shape, dtype = data_lib.example_spec(config.data)
  shape = (config.train.d_steps, config.train.batch_size, *shape)
  rng = np.random.default_rng(0)
  values = (rng.integers(0, 256, shape, np.uint8) if dtype == np.uint8
            else rng.standard_normal(shape).astype(dtype))
  return jax.device_put(values, parallel.batch_sharding(mesh, batch_axis=1))
