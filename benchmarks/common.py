"""What the benchmark scripts share: building a config's compiled train step."""

import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import models, parallel, train  # pylint: disable=g-import-not-at-top,wrong-import-position


def build(config, mesh):
  """(compiled step, initial state, compile seconds, XLA's FLOPs per iteration) for `config`."""
  train.validate_config(config)
  parallel.check_batch_size(config.train.batch_size, mesh)
  replicated = parallel.replicated(mesh)
  size = config.data.image_size
  generator, discriminator = models.build_models(config.model, size)
  g_tx, d_tx = train.make_optimizers(config)
  init = train.make_init(config, generator, discriminator, g_tx, d_tx)
  shardings = jax.tree.map(lambda _: replicated, jax.eval_shape(init))
  state = jax.jit(init, out_shardings=shardings)()
  example = jax.ShapeDtypeStruct(
      (config.train.d_steps, config.train.batch_size, size, size, 3), np.uint8,
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
  """One random uint8 iteration batch on the devices."""
  size = config.data.image_size
  shape = (config.train.d_steps, config.train.batch_size, size, size, 3)
  return jax.device_put(np.random.default_rng(0).integers(0, 256, shape, np.uint8),
                        parallel.batch_sharding(mesh, batch_axis=1))
