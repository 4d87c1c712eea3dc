"""What the discriminator is doing, computed at log steps (not every step).

Per the lectures, a GAN's health shows in its discriminator: how Lipschitz it
is (largest singular value of each kernel; the size of grad_x D on real,
generated and interpolated points), how far apart it puts real and generated
data (the Wasserstein estimate E[D(real)] - E[D(fake)], meaningful for
Wasserstein-type losses) and how well it separates them (accuracy with the
logit threshold 0, i.e. D(x) = 1/2 under the sigmoid losses).
"""

from typing import Any, Dict, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import constraints
from gan_jax.latents import LatentSampler
from gan_jax.penalties import input_gradient_norms
from gan_jax.state import TrainState
from gan_jax.step import apply_in_train_mode


def kernel_sigmas(params: Any) -> Dict[str, jax.Array]:
  """{'sigma/<layer path>': largest singular value} of every kernel (matrix view as in SNGAN)."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    name = constraints.path_name(path)
    if name.endswith("kernel"):
      out[f"sigma/{name[:-len('/kernel')]}"] = constraints.largest_singular_value(leaf)
  return out


def discriminator_diagnostics(generator: nn.Module, discriminator: nn.Module,
                              sample_latent: LatentSampler, latent_dim: int,
                              state: TrainState, real: jax.Array, key: jax.Array,
                              labels: Optional[jax.Array] = None) -> Dict[str, jax.Array]:
  """Diagnostics of D at `state` on the real batch `real` (float, [-1, 1]) and fresh fakes
  (conditional runs: generated from, and judged with, the reals' `labels`)."""
  k_z, k_eps = jax.random.split(key)
  z = sample_latent(k_z, (real.shape[0], latent_dim))
  fake, _ = apply_in_train_mode(generator, state.g_params, state.g_stats, z, labels)

  def d_fn(x):
    return apply_in_train_mode(discriminator, state.d_params, state.d_stats, x, labels)[0]

  real_logits, fake_logits = d_fn(real), d_fn(fake)
  eps = jax.random.uniform(k_eps, (real.shape[0],) + (1,) * (real.ndim - 1))
  out = {"diag/w_estimate": jnp.mean(real_logits) - jnp.mean(fake_logits)}
  if not getattr(discriminator, "scores_reconstruction", False):
    # An auto-encoder D's logits (minus reconstruction errors) have no threshold at 0.
    out["diag/d_accuracy"] = 0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0))
  for name, x in (("real", real), ("fake", fake), ("interp", eps * real + (1 - eps) * fake)):
    norms = input_gradient_norms(d_fn, x)
    out[f"diag/grad_norm_{name}_mean"] = jnp.mean(norms)
    out[f"diag/grad_norm_{name}_max"] = jnp.max(norms)
  out.update({f"diag/{k}": v for k, v in kernel_sigmas(state.d_params).items()})
  return out
