"""Grouped 3x3 convolutions two ways: lax's grouped convolution and one matrix product per
kernel tap (gan_jax/models/layers.py grouped_conv_taps, R3GAN's `model.grouped_conv=taps`).

  python benchmarks/grouped_conv.py --out=benchmarks/grouped_conv.md

For R3GAN's block shapes (batch 64), times the forward pass, both gradients, and the
gradient with respect to the kernel of an R1-style input-gradient penalty (a double
backward), each the mean of 3 calls after one warm-up, on the default device.
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.models import layers  # pylint: disable=g-import-not-at-top,wrong-import-position

SHAPES = ((64, 4, 512, 32), (64, 8, 256, 16), (64, 32, 64, 4))  # batch, side, channels, groups


def seconds(fn, *args, repeats: int = 3) -> float:
  """Mean wall time of the jitted `fn` over `repeats` calls after one warm-up call."""
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / repeats


def measure(form, batch, side, channels, groups):
  """(forward, gradients, penalty gradient) seconds of `form` at one shape."""
  x = jnp.full((batch, side, side, channels), 0.1)
  kernel = jnp.full((3, 3, channels // groups, channels), 0.01)
  conv = lambda x, k: form(x, k, groups)

  def penalty(k, x):
    return jnp.sum(jax.grad(lambda x: jnp.tanh(conv(x, k)).sum())(x) ** 2)

  return (seconds(conv, x, kernel),
          seconds(jax.grad(lambda x, k: conv(x, k).sum(), argnums=(0, 1)), x, kernel),
          seconds(jax.grad(penalty), kernel, x))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  lines = ["# Grouped 3x3 convolutions, lax against per-tap matrix products "
           f"({common.run_stamp()})", "",
           "Command: `python benchmarks/grouped_conv.py`. Milliseconds, batch 64.", "",
           "| shape (side x side x channels, groups) | form | forward | both gradients | "
           "R1-style penalty's kernel gradient |", "|---|---|---|---|---|"]
  for batch, side, channels, groups in SHAPES:
    for name, form in (("lax", layers.grouped_conv_lax), ("taps", layers.grouped_conv_taps)):
      times = measure(form, batch, side, channels, groups)
      lines.append(f"| {side}x{side}x{channels}, {groups} | {name} | "
                   + " | ".join(f"{1e3 * t:.1f}" for t in times) + " |")
      print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
