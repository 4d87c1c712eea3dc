"""Mixed precision: the dtype the networks compute in, with float32 parameters.

`config.model.dtype = 'bfloat16'` makes the train step run G and D in bfloat16:
each network call casts its (float32) parameters and its input to bfloat16, so
every flax layer computes in bfloat16, and casts its output back to float32.
Parameters, gradients (the cast's transpose returns them in float32), optimizer
state, the EMA and BatchNorm running statistics stay float32, and losses and
penalties are reduced in float32. Sampling and evaluation use float32.
"""

from typing import Any, Optional

import jax
import jax.numpy as jnp

from gan_jax.registry import check_choice

DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str) -> Optional[Any]:
  """The compute dtype named by config.model.dtype (None: float32, no casts)."""
  check_choice("compute dtype", name, DTYPES)
  return DTYPES[name]


def cast_floats(tree: Any, dtype: Any) -> Any:
  """`tree` with every floating-point leaf cast to `dtype` (integer leaves untouched)."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def like(tree: Any, reference: Any) -> Any:
  """`tree` with each leaf cast to the dtype of the matching leaf of `reference`."""
  return jax.tree.map(lambda x, r: x.astype(r.dtype), tree, reference)
