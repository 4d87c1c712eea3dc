"""Weight regularisers as optax transformations, placed first in a network's chain.

Like optax's `add_decayed_weights`, each adds the gradient of a penalty on the
parameters to the incoming gradients, so the optimizer after it (Adam, ...)
sees the regularised gradient, as when the penalty is added to the loss:

  optax.chain(orthogonal_regularisation(1e-4), optax.adam(1e-4, b1=0.0))  # BigGAN's G

Which parameters they touch is a path mask (constraints.path_mask; kernels only
by default).
"""

import jax
import jax.numpy as jnp
import optax

from gan_jax.constraints import KERNELS, as_matrix, path_mask


def _off_diagonal_gram(kernel: jax.Array):
  """(W, W^T W * (1 - I)) for W = as_matrix(kernel) in float32."""
  matrix = as_matrix(kernel).astype(jnp.float32)
  gram = matrix.T @ matrix
  return matrix, gram * (1.0 - jnp.eye(gram.shape[0], dtype=gram.dtype))


def orthogonality_penalty(kernel: jax.Array) -> jax.Array:
  """||W^T W * (1 - I)||_F^2 / 2 for W = as_matrix(kernel) (fan-in, outputs): the squared
  correlations between different output filters, their norms left free (BigGAN's form)."""
  return 0.5 * jnp.sum(_off_diagonal_gram(kernel)[1] ** 2)


def orthogonality_gradient(kernel: jax.Array) -> jax.Array:
  """The gradient of orthogonality_penalty: 2 W (W^T W * (1 - I)), in the kernel's shape.

  Equals BigGAN's added gradient at strength 1 (its weights are (outputs, fan-in),
  ours (fan-in, outputs)).
  """
  matrix, off_diagonal = _off_diagonal_gram(kernel)
  return (2.0 * matrix @ off_diagonal).reshape(kernel.shape).astype(kernel.dtype)


def filter_coherence(kernel: jax.Array) -> jax.Array:
  """The root-mean-square cosine similarity between the distinct output filters (columns) of
  W = as_matrix(kernel): 0 for orthogonal filters, 1 for parallel ones, about
  1 / sqrt(fan-in) for random Gaussian ones. Scale-free, unlike orthogonality_penalty. An
  all-zero filter has no direction and counts as orthogonal to the others; a kernel with a
  single output has no pairs and gets NaN."""
  matrix = as_matrix(kernel).astype(jnp.float32)
  norms = jnp.linalg.norm(matrix, axis=0, keepdims=True)
  unit = matrix / jnp.where(norms > 0, norms, 1.0)
  n = unit.shape[1]
  off_diagonal = (unit.T @ unit) * (1.0 - jnp.eye(n, dtype=jnp.float32))
  return jnp.sqrt(jnp.sum(off_diagonal ** 2) / (n * (n - 1)))


def orthogonal_regularisation(strength: float, pattern: str = KERNELS
                              ) -> optax.GradientTransformation:
  """Adds strength * the gradient of orthogonality_penalty to each selected kernel's
  gradient (BigGAN's orthogonal regularisation, strength 1e-4 there, on G).

  Needs params (the gradient depends on them); stateless. A kernel with a single
  output (a Dense layer to one logit) has no off-diagonal and gets 0.
  """
  if strength < 0:
    raise ValueError(f"orthogonal regularisation strength must be >= 0, got {strength}")

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("orthogonal_regularisation needs params: call update(updates, state, "
                       "params)")
    updates = jax.tree.map(lambda g, w: g + strength * orthogonality_gradient(w).astype(g.dtype),
                           updates, params)
    return updates, state

  inner = optax.GradientTransformation(init_fn, update_fn)
  return optax.masked(inner, lambda params: path_mask(params, pattern))
