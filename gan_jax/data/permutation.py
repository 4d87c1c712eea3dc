"""Keyed pseudo-random permutations of [0, n), evaluated one index at a time on device.

`permute_index(i, key, n)` is the image of i under a bijection of [0, n) chosen
by `key`: a balanced Feistel network on the smallest even-bit-width domain
holding n, restricted to [0, n) by cycle walking. It costs O(len(i)) work,
never materialises the permutation (a sort of n elements, as
`jax.random.permutation` needs), and so lets each device pick its batch of a
shuffled epoch in microseconds.

Cycle walking is a loop with a data-dependent exit, which on a GPU costs a
device -> host round trip per iteration (the host must read the predicate),
stalling a train step the selection is compiled into. So the first
`unrolled_walks` steps are unrolled (one fused elementwise kernel); a walk step
leaves values already in [0, n) alone, so this gives exactly the same
permutation, and the loop after it is nearly always left at its first check.
"""

import jax
import jax.numpy as jnp

_ROUNDS = 6
# Walk steps before the loop: an index still outside [0, n) after them has probability at
# most (3/4)**8 = 10% (the domain is < 4n), and typically (n just below the domain) far less.
UNROLLED_WALKS = 8


def _mix(x: jax.Array, round_key: jax.Array) -> jax.Array:
  """A uint32 avalanche hash of x under round_key (murmur3's finaliser)."""
  x = (x * jnp.uint32(0x9E3779B1)) ^ round_key
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x85EBCA77)
  x = x ^ (x >> 13)
  x = x * jnp.uint32(0xC2B2AE3D)
  return x ^ (x >> 16)


def _half_bits(n: int) -> int:
  bits = max(1, (n - 1).bit_length())
  return (bits + 1) // 2


def permute_index(index: jax.Array, key: jax.Array, n: int,
                  unrolled_walks: int = UNROLLED_WALKS) -> jax.Array:
  """index (int, values in [0, n)) -> its image under the key's permutation of [0, n)
  (the same for any `unrolled_walks`, the walk steps taken before the loop)."""
  if not 1 <= n < 2**31:
    raise ValueError(f"n must be in [1, 2**31), got {n}")
  half = _half_bits(n)
  mask = jnp.uint32((1 << half) - 1)
  round_keys = jax.random.bits(key, (_ROUNDS,), jnp.uint32)

  def feistel(x):
    left, right = x >> half, x & mask
    for r in range(_ROUNDS):
      left, right = right, left ^ (_mix(right, round_keys[r]) & mask)
    return (left << half) | right

  def walk(x):
    return jnp.where(x >= n, feistel(x), x)

  x = feistel(index.astype(jnp.uint32))
  for _ in range(unrolled_walks):
    x = walk(x)
  x = jax.lax.while_loop(lambda x: jnp.any(x >= n), walk, x)
  return x.astype(jnp.int32)
