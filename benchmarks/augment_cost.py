"""What augmenting D's inputs costs: one policy's forward pass and its gradient, per batch.

  python benchmarks/augment_cost.py [--policies=color,translation,cutout;ada;ada,cutout] \
      [--batch=64] [--size=64] [--p=0.3] [--repeats=10] [--out=benchmarks/augment_cost.md]

Times `augment.make_augment(policy)` on a random NHWC batch at a traced probability p (as
ADA and the annealed p call it): the jitted forward pass, and the gradient of a weighted
sum of its output w.r.t. the input (what G's update and a penalty taken through the
augmentation pay), each the mean over --repeats calls after one to compile.
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import augment  # pylint: disable=g-import-not-at-top,wrong-import-position


def time_policy(policy: str, batch: int, size: int, p: float, repeats: int):
  """(forward ms, gradient ms) of `policy` on a (batch, size, size, 3) batch."""
  x = jax.random.uniform(jax.random.PRNGKey(0), (batch, size, size, 3), minval=-1, maxval=1)
  weights = jax.random.normal(jax.random.PRNGKey(1), x.shape)
  fn = augment.make_augment(policy, 1.0)
  forward = jax.jit(lambda key, x: fn(key, x, jnp.float32(p)))
  gradient = jax.jit(jax.grad(lambda x, key: jnp.sum(weights * fn(key, x, jnp.float32(p)))))
  times = []
  for call in (lambda key: forward(key, x), lambda key: gradient(x, key)):
    call(jax.random.PRNGKey(0)).block_until_ready()
    start = time.perf_counter()
    for i in range(repeats):
      call(jax.random.PRNGKey(i)).block_until_ready()
    times.append((time.perf_counter() - start) / repeats * 1000)
  return tuple(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--policies", default="color,translation,cutout;ada;ada,cutout",
                      help="semicolon-separated policies")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--p", type=float, default=0.3)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  lines = [f"# Augmentation cost, batch {args.batch} of {args.size}x{args.size}, p {args.p} "
           f"({common.run_stamp()})", "",
           f"Command: `python benchmarks/augment_cost.py {' '.join(sys.argv[1:])}`", "",
           "| policy | forward (ms) | gradient (ms) |", "|---|---|---|"]
  for policy in args.policies.split(";"):
    forward, gradient = time_policy(policy, args.batch, args.size, args.p, args.repeats)
    lines.append(f"| {policy} | {forward:.1f} | {gradient:.1f} |")
    print(lines[-1], flush=True)
  common.write_lines(lines, args.out)


if __name__ == "__main__":
  main()
