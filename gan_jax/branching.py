"""Work skipped under a traced condition: `lax.cond`, or both sides computed and one kept.

A `lax.cond` runs only the taken side, which is what an accelerator wants. XLA's CPU
backend, though, runs the kernel-gradient convolutions inside a conditional's (or a
loop's) body far slower than at the top level of the program (jax-ml/jax#12868;
measured here, 2-core CPU, JAX 0.10.2: four 3x3 convolutions on 32 x 32x32x64, their
kernel gradient 0.62 s at the top level and 14.3 s inside a cond; their forward pass
0.066 s either way). On the CPU it is then faster to compute both sides and select,
so 'auto' picks 'select' there and the conditional form elsewhere. Both forms give the
same values; 'select' also gives the untaken side's work a zero gradient.
"""

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from gan_jax.registry import check_choice

SELECT = "select"


def resolve(field: str, name: str, choices: Sequence[str], backend: Optional[str] = None) -> str:
  """The branching form config `field` = `name` names among `choices` (the conditional form
  first, then 'select'); 'auto' is 'select' on the CPU (the backend given, else JAX's) and
  the conditional form elsewhere. ValueError listing the choices for another name."""
  check_choice(field, name, tuple(choices) + ("auto",))
  if name == "auto":
    return SELECT if (backend or jax.default_backend()) == "cpu" else choices[0]
  return name


def cond_or_select(pred: jax.Array, true_fn: Callable[[], Any], false_fn: Callable[[], Any],
                   how: str) -> Any:
  """true_fn() where the scalar `pred` holds, else false_fn() (pytrees of one structure):
  as one `lax.cond` (how='cond') or both computed and selected leaf by leaf ('select')."""
  if how == SELECT:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), true_fn(), false_fn())
  return jax.lax.cond(pred, true_fn, false_fn)
