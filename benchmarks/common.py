"""What the benchmark scripts share: building a config's compiled train step, table cells."""

import datetime
import os
import platform
import sys
import time

import jax
import numpy as np
try:
  from jax.extend.core import jaxprs_in_params  # pylint: disable=g-import-not-at-top
except ImportError:  # older JAX
  from jax.core import jaxprs_in_params  # pylint: disable=g-import-not-at-top

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import data as data_lib, fed_step, parallel, train  # pylint: disable=g-import-not-at-top,wrong-import-position


def build(config, mesh, iterations_per_call: int = 1, feeder=None):
  """(compiled step, initial state, compile seconds, model FLOPs per call) for `config`.

  The compiled step is f(state, batch). With `iterations_per_call` K > 1 it runs K
  iterations on the same batch in one `lax.scan` (one dispatch, no host round trip
  between them). With a `feeder` that selects batches on the devices (a DeviceFeeder)
  the selection is compiled in as training does it (gan_jax/fed_step.py): the step is
  f(state, feeder.device_data()) and every iteration, scanned ones too, trains on its
  own batch, iteration state.step's.
  """
  train.validate_config(config)
  parallel.check_batch_size(config.train.batch_size, mesh)
  train.check_d_passes(config, mesh)
  train.check_microbatches(config, mesh)
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
  flops = model_flops(config, example)
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
  return compiled, state, compile_s, iterations_per_call * flops


def model_flops(config, example) -> float:
  """FLOPs of one training iteration of `config` on `example` batches: an analytic count
  of the step's convolutions and matmuls (matmul_flops) with the models in their reference
  forms (model.upconv=phases, model.downconv=strided), so that forms which compute the same
  function with extra border work are not credited with it. XLA's cost analysis is not
  used: cuDNN convolutions are opaque to it and JAX 0.11 on GPU returns none."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for field, reference in (("upconv", "phases"), ("downconv", "strided")):
      if field in config.model:
        config.model[field] = reference
  generator, discriminator = train.make_models(config)
  g_tx, d_tx = train.make_optimizers(config)
  init = train.make_init(config, generator, discriminator, g_tx, d_tx)
  step = train.make_step(config, generator, discriminator, g_tx, d_tx)
  state = jax.eval_shape(init)
  example = jax.ShapeDtypeStruct(example.shape, example.dtype)
  return matmul_flops(jax.make_jaxpr(step)(state, example).jaxpr)


def _size(shape) -> int:
  return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def matmul_flops(jaxpr) -> float:
  """FLOPs (2 per multiply-add) of the convolutions and dot products in `jaxpr`, sub-jaxprs
  included (a scan's body times its length). Elementwise work is not counted; work XLA
  later removes as dead and the zero-padding taps at image borders are (a slight
  overcount)."""
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      rhs = eqn.invars[1].aval.shape
      spec = eqn.params["dimension_numbers"].rhs_spec  # (out features, in features, *spatial)
      per_output = _size([rhs[d] for d in spec[1:]])   # in features x window
      # An input dilated by d (a strided conv's input gradient) meets the window's taps
      # only at every d-th position: count those, not the zeros.
      per_output /= _size(eqn.params["lhs_dilation"])
      total += 2.0 * _size(eqn.outvars[0].aval.shape) * per_output
    elif name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2.0 * _size(eqn.outvars[0].aval.shape) * _size([lhs[d] for d in contract])
    repeat = eqn.params.get("length", 1) if name == "scan" else 1
    for sub in jaxprs_in_params(eqn.params):
      total += repeat * matmul_flops(getattr(sub, "jaxpr", sub))
  return total


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


def processor(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU as 'model name (family F model M, widest vector ISA)' from `cpuinfo` (Linux),
  else what the platform module says. XLA:CPU compiles for the host's ISA, so the same
  code can round differently, and a GAN's training can end elsewhere, on another CPU."""
  try:
    with open(cpuinfo) as f:
      first = f.read().split("\n\n")[0]
  except OSError:
    return platform.processor() or platform.machine() or "unknown CPU"
  fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
  fields = {key.strip(): value.strip() for key, value in fields.items()}
  flags = set(fields.get("flags", "").split())
  isa = next((name.upper() for name in ("avx512f", "avx2", "avx", "sse4_2") if name in flags),
             "")
  details = ", ".join(part for part in (
      f"family {fields['cpu family']} model {fields['model']}"
      if "cpu family" in fields and "model" in fields else "", isa) if part)
  name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
  return f"{name} ({details})" if details else name


def run_stamp() -> str:
  """Where and when a table was measured: 'date, host, N CPU cores, the CPU, JAX version,
  platform' (and the accelerator's kind when it is not the CPU)."""
  device = jax.devices()[0]
  kind = "" if device.platform == "cpu" else f" ({device.device_kind})"
  return (f"{datetime.date.today()}, {platform.node()}, {os.cpu_count()} CPU cores, "
          f"{processor()}, JAX {jax.__version__}, {device.platform}{kind}")


def spread(values, digits: int) -> str:
  """A table cell 'mean +/- std (min m)' of per-seed values, `digits` decimals."""
  values = np.asarray(values, np.float64)
  return f"{values.mean():.{digits}f} +/- {values.std():.{digits}f} (min {values.min():.{digits}f})"


def config_overrides(pieces) -> list:
  """FIELD=VALUE overrides from a comma-split flag list, where a piece without '=' continues
  the value before it: ['penalty.use=cr', 'cr_fake', 'model.dtype=bfloat16'] ->
  ['penalty.use=cr,cr_fake', 'model.dtype=bfloat16'] (ValueError for a leading piece
  without '=')."""
  out = []
  for piece in pieces:
    if "=" in piece:
      out.append(piece)
    elif out:
      out[-1] += "," + piece
    else:
      raise ValueError(f"an override is FIELD=VALUE, got {piece!r}")
  return out


def write_lines(lines, path: str) -> None:
  """Writes markdown `lines` to `path` (nothing for an empty path)."""
  if path:
    with open(path, "w") as f:
      f.write("\n".join(lines) + "\n")
