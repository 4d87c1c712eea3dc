"""Lipschitz constraints as optax transformations, placed last in a network's chain.

Like optax's `keep_params_nonnegative`, each is a projection written as a
GradientTransformation: it rewrites the incoming updates u so that
params + u' is the projection of params + u onto the constraint set. Which
parameters it touches is a mask built from parameter paths (`path_mask`;
kernels only by default), so they compose with any optimizer:

  optax.chain(optax.rmsprop(5e-5), weight_clip(0.01))          # WGAN
  optax.chain(optax.adam(2e-4), spectral_norm_projection())     # sigma_max(W) <= 1
"""

import re
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from gan_jax.registry import Registry

PyTree = Any
MaskOrFn = Union[PyTree, Callable[[PyTree], PyTree]]
KERNELS = r"(^|/)kernel$"


def path_name(path) -> str:
  """A parameter's tree path as the '/'-joined names its patterns match ('Conv_0/kernel')."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def path_mask(params: PyTree, pattern: str = KERNELS) -> PyTree:
  """A pytree of bools: True where the parameter's path_name matches `pattern`."""
  regex = re.compile(pattern)
  return jax.tree_util.tree_map_with_path(lambda p, _: bool(regex.search(path_name(p))), params)


def _masked(inner: optax.GradientTransformation, pattern: str) -> optax.GradientTransformation:
  return optax.masked(inner, lambda params: path_mask(params, pattern))


def _projected_update(params: jax.Array, target: jax.Array, bound: Optional[float] = None):
  """u with params + u == target in float arithmetic (and |params + u| <= bound if given)."""
  update = target - params
  if bound is not None:
    # target - params then params + (...) can round past the bound by an ulp: step back.
    for _ in range(2):
      result = params + update
      update = jnp.where(result > bound, jnp.nextafter(update, -jnp.inf), update)
      update = jnp.where(result < -bound, jnp.nextafter(update, jnp.inf), update)
  return update


def weight_clip(clip: float, pattern: str = KERNELS) -> optax.GradientTransformation:
  """After the update every selected parameter lies in [-clip, clip] (WGAN's clipping)."""
  if clip <= 0:
    raise ValueError(f"clip must be positive, got {clip}")

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("weight_clip needs params: call update(updates, state, params)")
    updates = jax.tree.map(
        lambda u, p: _projected_update(p, jnp.clip(p + u, -clip, clip), clip), updates, params)
    return updates, state

  return _masked(optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn), pattern)


class SpectralNormState(NamedTuple):
  """Power-iteration vectors, one per selected kernel (left singular vector estimates)."""
  u: PyTree


def as_matrix(kernel: jax.Array) -> jax.Array:
  """A kernel as the matrix whose spectral norm is bounded: (fan-in, outputs).

  A dense kernel (in, out) is itself; a conv kernel (kh, kw, in, out) becomes
  (kh * kw * in, out), the convention of SNGAN (Miyato et al., 2018). Its
  norm bounds the convolution's Lipschitz constant up to a factor of at most
  sqrt(kh * kw) (Tsuzuku et al., 2018).
  """
  return kernel.reshape(-1, kernel.shape[-1]) if kernel.ndim > 1 else kernel.reshape(1, -1)


def _power_iteration(matrix: jax.Array, u: jax.Array, steps: int):
  """(u, v, sigma): `steps` rounds of power iteration on matrix (m, n) from u (m,).

  The rounds are one compiled loop, not unrolled: spectral_norm_projection's 30 rounds at
  init cost ~5 s of XLA:CPU compilation unrolled (measured on the toy ring's MLP critic),
  0.1 s as a loop."""
  def normalize(x):
    return x / (jnp.linalg.norm(x) + 1e-12)
  def round_(_, uv):
    u = normalize(matrix @ uv[1])
    return u, normalize(matrix.T @ u)
  u, v = jax.lax.fori_loop(0, steps, round_, (u, normalize(matrix.T @ u)))
  sigma = u @ (matrix @ v)
  return u, v, sigma


def largest_singular_value(kernel: jax.Array, steps: int = 50) -> jax.Array:
  """sigma_max of `as_matrix(kernel)` by power iteration from a fixed start (diagnostics)."""
  matrix = as_matrix(kernel).astype(jnp.float32)
  u = jnp.ones((matrix.shape[0],), jnp.float32) / jnp.sqrt(matrix.shape[0])
  return _power_iteration(matrix, u, steps)[2]


def spectral_norm_projection(target: float = 1.0, steps: int = 1, init_steps: int = 30,
                             pattern: str = KERNELS) -> optax.GradientTransformation:
  """After the update every selected kernel has sigma_max(as_matrix(W)) <= target.

  Kernels whose estimated largest singular value exceeds `target` are scaled
  down to it. The estimate comes from power iteration whose vector lives in
  the transformation's state: `init_steps` rounds at init, then `steps` per
  update, warm-started, which tracks sigma_max as the weights move. Power
  iteration never overestimates, so a lagging estimate lets sigma_max exceed
  the target slightly: measured with random gradient directions, 5e-7
  (relative) under Adam at 2e-4, 1e-5 at 1e-3, and 1.5% at 1e-2, where
  steps=3 brings it to 0.2%. In real training the top of a projected kernel's
  spectrum crowds towards the target, which slows power iteration: the toy
  lab's MLP critic under Adam 1e-3, b1=0 is 1.3% over after 30 updates and
  0.8% after 300 (0.3% and 0.1% with steps=3). Raise `steps` for violent
  updates.
  """
  if target <= 0:
    raise ValueError(f"target must be positive, got {target}")

  def init_fn(params):
    def start(kernel):
      matrix = as_matrix(kernel).astype(jnp.float32)
      u = jnp.ones((matrix.shape[0],), jnp.float32) / jnp.sqrt(matrix.shape[0])
      return _power_iteration(matrix, u, init_steps)[0]
    return SpectralNormState(u=jax.tree.map(start, params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("spectral_norm_projection needs params")

    def project(update, param, u):
      new = param + update
      u, _, sigma = _power_iteration(as_matrix(new).astype(jnp.float32),
                                     jax.lax.stop_gradient(u), steps)
      scale = jnp.minimum(1.0, target / jnp.maximum(sigma, 1e-12)).astype(new.dtype)
      return _projected_update(param, new * scale), u

    leaves, treedef = jax.tree.flatten(updates)
    results = [project(*args) for args in zip(leaves, treedef.flatten_up_to(params),
                                               treedef.flatten_up_to(state.u))]
    return (treedef.unflatten([r[0] for r in results]),
            SpectralNormState(u=treedef.unflatten([r[1] for r in results])))

  return _masked(optax.GradientTransformation(init_fn, update_fn), pattern)


CONSTRAINTS: Registry[Callable[..., optax.GradientTransformation]] = Registry("constraint")
CONSTRAINTS.register("weight_clip")(weight_clip)
CONSTRAINTS.register("spectral_norm_projection")(spectral_norm_projection)
