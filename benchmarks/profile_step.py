"""Where a config's train step spends its device time: the top kernels of a profiled run.

  python benchmarks/profile_step.py --config=configs/dcgan.py --batch=2048 --dtype=bfloat16
  python benchmarks/profile_step.py --config=configs/dcgan.py --config.model.upconv=transpose

Builds the same compiled, state-donating step as benchmarks/throughput.py, runs `iters`
iterations under jax.profiler.trace and reads the trace back (jax.profiler.ProfileData, no
TensorBoard needed). For every device plane it prints each timeline line's busy time and,
for the kernel stream and the "XLA Ops" line, the `top` events by total time (named
"HLO instruction: kernel" where the trace links them) with their call counts and share of that line's busy time, as one JSON object (also appended to --out).
Rows linked to an HLO instruction carry `hlo`: its output shape, window and the JAX
operation it came from (e.g. "transpose(jvp(Discriminator))/Conv_3/conv_general_dilated",
a gradient of D's fourth conv); --hlo_out saves the whole optimised HLO. On CPU the table
lists XLA's thunks instead of kernels.
"""

import collections
import json
import os
import re
import sys
import tempfile
from typing import Dict, Optional

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", "configs/dcgan.py", "Config to profile.",
                                          lock_config=True)
_BATCH = flags.DEFINE_integer("batch", 0, "Global batch size (0: the config's).")
_DTYPE = flags.DEFINE_string("dtype", "", "Compute dtype ('': the config's model.dtype).")
_ITERS = flags.DEFINE_integer("iters", 10, "Profiled iterations.")
_TOP = flags.DEFINE_integer("top", 25, "Kernels listed per plane.")
_OUT = flags.DEFINE_string("out", "", "Also append the JSON summary to this file.")
_HLO = flags.DEFINE_string("hlo_out", "", "Also write the compiled step's optimised HLO here "
                           "(to match the op names of the table to shapes).")


def _short(name: str, width: int = 140) -> str:
  return name if len(name) <= width else name[:width - 3] + "..."


def _event_name(event) -> str:
  """The event's name, prefixed by the HLO instruction it runs where the trace says."""
  hlo_op = dict(event.stats).get("hlo_op")
  return f"{hlo_op}: {event.name}" if hlo_op and hlo_op != event.name else event.name


_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+|\([^=]*?\)) ")


def hlo_instructions(hlo_text: str) -> Dict[str, str]:
  """{instruction name: "output shape; window; JAX op it came from"} of an HLO module's
  text, to say which layer and pass a kernel row belongs to."""
  out = {}
  for line in hlo_text.splitlines():
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, shape = match.groups()
    parts = [shape if len(shape) <= 80 else shape[:77] + "..."]
    window = re.search(r"window=\{([^}]*)\}", line)
    if window:
      parts.append(window.group(1))
    op_name = re.search(r'op_name="([^"]*)"', line)
    if op_name:
      parts.append(op_name.group(1).split(")/", 1)[-1][-100:])  # drop the jit(...) prefix
    out[name] = "; ".join(parts)
  return out


def _ranked(events, busy_ns: float, iters: int, top: int,
            instructions: Optional[Dict[str, str]] = None) -> list:
  totals = collections.defaultdict(lambda: [0.0, 0])
  for name, duration_ns in events:
    totals[name][0] += duration_ns
    totals[name][1] += 1
  ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]
  rows = []
  for name, (ns, count) in ranked:
    row = {"name": _short(name), "ms_per_iter": round(ns / 1e6 / iters, 3),
           "calls_per_iter": round(count / iters, 2), "share": round(ns / busy_ns, 3)}
    instruction = name.split(": ", 1)[0]
    if instructions and instruction in instructions:
      row["hlo"] = instructions[instruction]
    rows.append(row)
  return rows


def kernel_table(xspace_path: str, iters: int, top: int,
                 instructions: Optional[Dict[str, str]] = None) -> dict:
  """{plane: {line: busy ms per iteration, top: {line: [kernel rows]}}} from a trace file.

  Device planes (GPU/TPU): every line's busy time, and the top events of the busiest
  stream line (the kernels) and of the "XLA Ops" line (the HLO ops they belong to). CPU:
  the events of XLA's thunk threads (lines "tf_XLA...") merged into one table.
  """
  profile = jax.profiler.ProfileData.from_file(xspace_path)
  summary = {}
  for plane in profile.planes:
    lines = {line.name: [(_event_name(e), e.duration_ns) for e in line.events]
             for line in plane.lines}
    if plane.name.startswith("/device:"):
      busy = {name: sum(d for _, d in events) for name, events in lines.items()}
      streams = [n for n in lines if n.lower().startswith("stream") and busy[n]]
      wanted = ([max(streams, key=busy.get)] if streams else []) + [
          n for n in lines if n == "XLA Ops" and busy[n]]
      summary[plane.name] = {
          "lines_ms_per_iter": {n: round(b / 1e6 / iters, 3) for n, b in busy.items() if b},
          "top": {n: _ranked(lines[n], busy[n], iters, top, instructions) for n in wanted}}
    elif plane.name.startswith("/host:CPU"):
      events = [e for n, evs in lines.items() if n.startswith("tf_XLA") for e in evs]
      if events:
        busy = sum(d for _, d in events)
        summary[plane.name] = {"lines_ms_per_iter": {"XLA threads": round(busy / 1e6 / iters, 3)},
                               "top": {"XLA threads": _ranked(events, busy, iters, top,
                                                              instructions)}}
  return summary


def main(argv):
  del argv
  config = _CONFIG.value
  if _BATCH.value:
    config.train.batch_size = _BATCH.value
  if _DTYPE.value:
    config.model.dtype = _DTYPE.value
  mesh = parallel.make_mesh()
  compiled, state, _, _ = common.build(config, mesh)
  images = common.random_batch(config, mesh)
  hlo_text = compiled.as_text()
  if _HLO.value:
    with open(_HLO.value, "w") as f:
      f.write(hlo_text)
  for _ in range(3):
    state, metrics = compiled(state, images)
  jax.block_until_ready(metrics)
  with tempfile.TemporaryDirectory() as logdir:
    with jax.profiler.trace(logdir):
      for _ in range(_ITERS.value):
        state, metrics = compiled(state, images)
      jax.block_until_ready(metrics)
    paths = [os.path.join(root, f) for root, _, files in os.walk(logdir)
             for f in files if f.endswith(".xplane.pb")]
    if not paths:
      raise RuntimeError(f"jax.profiler.trace wrote no .xplane.pb under {logdir}")
    table = kernel_table(paths[0], _ITERS.value, _TOP.value, hlo_instructions(hlo_text))
  result = {"model": config.model.name, "batch_size": config.train.batch_size,
            "dtype": config.model.get("dtype", "float32"),
            "upconv": config.model.get("upconv", ""), "device": jax.devices()[0].device_kind,
            "planes": table}
  print(json.dumps(result, indent=1), flush=True)
  if _OUT.value:
    with open(_OUT.value, "a") as f:
      f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
  app.run(main)
