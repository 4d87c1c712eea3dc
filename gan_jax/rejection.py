"""G proposes, D corrects: discriminator rejection sampling (DRS; Azadi et al., 2019) and
Metropolis-Hastings with D (MH-GAN; Turner et al., 2019).

The lectures' optimal discriminator, D*(x) = p_data(x) / (p_data(x) + p_G(x)), makes the
logit of a sigmoid D the log density ratio: logit D*(x) = log p_data(x) - log p_G(x). So a
sample x ~ p_G kept with probability

    a(x) = min(1, exp(logit(x) - log_m))

follows p_data wherever p_G > 0, renormalised, as long as log_m is at least the largest
logit over G's support: rejection sampling with proposal p_G and envelope
exp(log_m) p_G. Where p_G is 0 (a mode G dropped) nothing can be corrected. A trained D
only approximates D*: the paper fine-tunes it against the final G first
(`lab.fit_discriminator` on the toy data; gan_jax/d_tuning.py, config.eval.mh_tune, on
images) and estimates log_m as the largest logit over a burn-in draw, clipping a(x) at 1
above it; the result is exact only as far as both hold. A few proposals with extreme
logits set that maximum and can make the acceptance rate tiny; `log_m_quantile` < 1 takes
that quantile of the burn-in logits instead, keeping every proposal above it (so
under-weighting where D is surest) in exchange for acceptance.
The logit is a log ratio only for a D trained with the minimax or non-saturating loss
(binary cross-entropy); for hinge or Wasserstein critics it is at best a score. Not
implemented: the paper's shift gamma, which trades exactness for a higher acceptance rate.

`rejection_sample` runs the loop on the host in rounds of `batch` proposals; everything
random comes from its key (the burn-in from split(key)[0], round r from fold_in(split(key)[1],
r)), so a call is reproducible.

`metropolis_hastings` needs no envelope: each of `num` chains starts at a proposal and, for
`steps` more independent proposals x', moves to x' with probability
min(1, exp(logit(x') - logit(x))), the independence sampler whose stationary distribution
is p_data on G's support when the logit is D*'s. Every chain returns its state after
`steps` proposals, so the cost is fixed (steps + 1 proposals per sample) where DRS's
depends on the acceptance rate; the price is that a chain that has not mixed is biased
towards G (its start). The MH-GAN paper starts chains at real data instead; here they start
at a proposal, so no data is needed. The starts come from fold_in(key, 0), step t's
proposals (all chains at once) from fold_in(key, t).
"""

from typing import Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError


class Rejection(NamedTuple):
  """What `rejection_sample` returns."""
  samples: np.ndarray      # (num, ...) kept proposals, in the order they were drawn
  acceptance_rate: float   # kept / proposed over the rounds drawn (burn-in excluded)
  log_m: float             # the envelope used: given, or the burn-in draw's largest logit
  proposed: int            # proposals drawn after the burn-in


def acceptance(logits: jax.Array, log_m: float) -> jax.Array:
  """min(1, exp(logit - log_m)): the probability of keeping each proposal."""
  return jnp.exp(jnp.minimum(jnp.asarray(logits, jnp.float32) - log_m, 0.0))


def rejection_sample(key: jax.Array, propose: Callable[[jax.Array, int], jax.Array],
                     score: Callable[[jax.Array], jax.Array], num: int, *, batch: int = 2500,
                     log_m: Optional[float] = None, burn_in: int = 10000,
                     log_m_quantile: float = 1.0, max_rounds: int = 200) -> Rejection:
  """`num` proposals of `propose(key, n) -> (n, ...)` kept with probability
  acceptance(score(x), log_m), `score` giving D's logits (n,) (module docstring).

  log_m None estimates it as the largest logit over `burn_in` proposals drawn first (their
  `log_m_quantile` quantile when below 1).
  UserError when `max_rounds` rounds of `batch` proposals keep fewer than `num`.
  """
  if num < 1 or batch < 1 or max_rounds < 1:
    raise ValueError(f"num, batch and max_rounds must be >= 1, got {num}, {batch}, {max_rounds}")
  burn_key, rounds_key = jax.random.split(key)
  if log_m is None:
    if burn_in < 1:
      raise ValueError(f"burn_in must be >= 1 to estimate log_m, got {burn_in}")
    if not 0.0 < log_m_quantile <= 1.0:
      raise ValueError(f"log_m_quantile must be in (0, 1], got {log_m_quantile}")
    log_m = float(jnp.quantile(score(propose(burn_key, burn_in)), log_m_quantile))
  if not np.isfinite(log_m):
    raise UserError(f"log_m must be finite, got {log_m} (D's logits are not finite?)")
  kept, count, proposed = [], 0, 0
  for round_index in range(max_rounds):
    k_propose, k_accept = jax.random.split(jax.random.fold_in(rounds_key, round_index))
    x = propose(k_propose, batch)
    keep = np.asarray(jax.random.uniform(k_accept, (batch,)) < acceptance(score(x), log_m))
    kept.append(np.asarray(x)[keep])
    count += int(keep.sum())
    proposed += batch
    if count >= num:
      return Rejection(np.concatenate(kept)[:num], count / proposed, log_m, proposed)
  raise UserError(
      f"rejection sampling kept {count} of {proposed} proposals ({count / proposed:.2%}) in "
      f"{max_rounds} rounds, short of {num}: raise max_rounds, or check that D's logits "
      f"are not far below log_m={log_m:.3g} almost everywhere")


class Chains(NamedTuple):
  """What `metropolis_hastings` returns."""
  samples: np.ndarray      # (num, ...) each chain's state after its last proposal
  acceptance_rate: float   # moves accepted / proposals made, over every chain and step
  moved: float             # fraction of chains that left their starting proposal


def mh_move(key: jax.Array, x: jax.Array, logits: jax.Array, proposal: jax.Array,
            proposal_logits: jax.Array) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """One independence Metropolis-Hastings step of a batch of chains at `x` (logits `logits`):
  (new states, their logits, which chains moved), each chain moving to its `proposal` with
  probability min(1, exp(proposal_logits - logits)), the draw from `key`. Traceable."""
  accept = jnp.log(jax.random.uniform(key, logits.shape)) < proposal_logits - logits
  x = jnp.where(accept.reshape(accept.shape + (1,) * (x.ndim - 1)), proposal, x)
  return x, jnp.where(accept, proposal_logits, logits), accept


def metropolis_hastings(key: jax.Array, propose: Callable[[jax.Array, int], jax.Array],
                        score: Callable[[jax.Array], jax.Array], num: int,
                        steps: int) -> Chains:
  """`num` samples, each the state of an independence Metropolis-Hastings chain after
  `steps` proposals of `propose(key, n)`, moves accepted with probability
  min(1, exp(score(x') - score(x))), `score` giving D's logits (module docstring)."""
  if num < 1 or steps < 0:
    raise ValueError(f"num must be >= 1 and steps >= 0, got {num}, {steps}")
  x = propose(jax.random.fold_in(key, 0), num)
  logits = jnp.asarray(score(x), jnp.float32)
  moved = jnp.zeros((num,), bool)
  accepted = 0
  for t in range(1, steps + 1):
    k_propose, k_accept = jax.random.split(jax.random.fold_in(key, t))
    proposal = propose(k_propose, num)
    proposal_logits = jnp.asarray(score(proposal), jnp.float32)
    x, logits, accept = mh_move(k_accept, x, logits, proposal, proposal_logits)
    moved = moved | accept
    accepted += int(accept.sum())
  rate = accepted / (num * steps) if steps else 0.0
  return Chains(np.asarray(x), rate, float(moved.mean()))
