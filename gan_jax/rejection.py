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
The paper's practical rule shifts the acceptance instead (`gamma_quantile`): with
a = min(logit - log_m, 0) and F(x) = a - log(1 - exp(a - eps)), the logit of exp(a) (to eps),
a proposal is kept with probability sigmoid(F(x) - gamma). gamma = 0 is the exact rule up to
eps; the paper sets gamma from a high percentile of F over each batch, which keeps the
proposals above that percentile more often than not, so acceptance no longer collapses
when one extreme logit sets log_m, at the price of exactness: the kept distribution is no
longer p_data's (on the toy ring it favours D's preferred modes, benchmarks/README.md).
Here gamma is the `gamma_quantile` quantile of F over the burn-in draw, fixed for the call.
The logit is a log ratio only for a D trained with the minimax or non-saturating loss
(binary cross-entropy); for hinge or Wasserstein critics it is at best a score.

`rejection_sample` runs the loop on the host in rounds of `batch` proposals; everything
random comes from its key (the burn-in from split(key)[0], round r from fold_in(split(key)[1],
r)), so a call is reproducible.

`metropolis_hastings` needs no envelope: each of `num` chains starts at a proposal and, for
`steps` more independent proposals x', moves to x' with probability
min(1, exp(logit(x') - logit(x))), the independence sampler whose stationary distribution
is p_data on G's support when the logit is D*'s. Every chain returns its state after
`steps` proposals, so the cost is fixed (steps + 1 proposals per sample) where DRS's
depends on the acceptance rate; the price is that a chain that has not mixed is biased
towards G (its start). By default chains start at a proposal, so no data is needed; the
starts come from fold_in(key, 0), step t's proposals (all chains at once) from
fold_in(key, t). The MH-GAN paper starts them at real data instead (`start`): a real point
has a logit typical of p_data, so the first move is already judged against the target
rather than against wherever G's first proposal fell. A chain that takes no proposal
restarts from its first proposal (G's own sample) for as many proposals again, so no real
point is ever returned (MH-GAN restarts such chains from a generated sample); the
restarts' proposals come from fold_in(key, steps + t). On the toy ring data starts do as
well as G starts, at 1.1-1.3x the proposals (benchmarks/README.md).
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
  gamma: Optional[float] = None  # the shift of DRS's practical rule (None: the exact rule)


def acceptance(logits: jax.Array, log_m: float) -> jax.Array:
  """min(1, exp(logit - log_m)): the probability of keeping each proposal."""
  return jnp.exp(jnp.minimum(jnp.asarray(logits, jnp.float32) - log_m, 0.0))


def log_odds_to_envelope(logits: jax.Array, log_m: float, eps: float = 1e-6) -> jax.Array:
  """DRS's F(x) = a - log(1 - exp(a - eps)) with a = min(logit - log_m, 0): the logit of the
  exact rule's probability exp(a), to eps."""
  a = jnp.minimum(jnp.asarray(logits, jnp.float32) - log_m, 0.0)
  return a - jnp.log1p(-jnp.exp(a - eps))


def shifted_acceptance(logits: jax.Array, log_m: float, gamma: float) -> jax.Array:
  """sigmoid(F(x) - gamma): DRS's practical probability of keeping each proposal (module
  docstring); gamma = 0 is acceptance(logits, log_m) to within 1e-6."""
  return jax.nn.sigmoid(log_odds_to_envelope(logits, log_m) - gamma)


def rejection_sample(key: jax.Array, propose: Callable[[jax.Array, int], jax.Array],
                     score: Callable[[jax.Array], jax.Array], num: int, *, batch: int = 2500,
                     log_m: Optional[float] = None, burn_in: int = 10000,
                     log_m_quantile: float = 1.0, gamma_quantile: Optional[float] = None,
                     max_rounds: int = 200) -> Rejection:
  """`num` proposals of `propose(key, n) -> (n, ...)` kept with probability
  acceptance(score(x), log_m), `score` giving D's logits (n,) (module docstring).

  log_m None estimates it as the largest logit over `burn_in` proposals drawn first (their
  `log_m_quantile` quantile when below 1). `gamma_quantile` in (0, 1) keeps them with
  shifted_acceptance instead, gamma that quantile of F over the burn-in draw.
  UserError when `max_rounds` rounds of `batch` proposals keep fewer than `num`.
  """
  if num < 1 or batch < 1 or max_rounds < 1:
    raise ValueError(f"num, batch and max_rounds must be >= 1, got {num}, {batch}, {max_rounds}")
  if gamma_quantile is not None and not 0.0 < gamma_quantile < 1.0:
    raise ValueError(f"gamma_quantile must be in (0, 1), got {gamma_quantile}")
  burn_key, rounds_key = jax.random.split(key)
  burn_logits = None
  if log_m is None or gamma_quantile is not None:
    if burn_in < 1:
      raise ValueError(f"burn_in must be >= 1 to estimate log_m or gamma, got {burn_in}")
    burn_logits = score(propose(burn_key, burn_in))
  if log_m is None:
    if not 0.0 < log_m_quantile <= 1.0:
      raise ValueError(f"log_m_quantile must be in (0, 1], got {log_m_quantile}")
    log_m = float(jnp.quantile(burn_logits, log_m_quantile))
  if not np.isfinite(log_m):
    raise UserError(f"log_m must be finite, got {log_m} (D's logits are not finite?)")
  gamma, keep_probability = None, lambda logits: acceptance(logits, log_m)
  if gamma_quantile is not None:
    gamma = float(jnp.quantile(log_odds_to_envelope(burn_logits, log_m), gamma_quantile))
    keep_probability = lambda logits: shifted_acceptance(logits, log_m, gamma)
  kept, count, proposed = [], 0, 0
  for round_index in range(max_rounds):
    k_propose, k_accept = jax.random.split(jax.random.fold_in(rounds_key, round_index))
    x = propose(k_propose, batch)
    keep = np.asarray(jax.random.uniform(k_accept, (batch,)) < keep_probability(score(x)))
    kept.append(np.asarray(x)[keep])
    count += int(keep.sum())
    proposed += batch
    if count >= num:
      return Rejection(np.concatenate(kept)[:num], count / proposed, log_m, proposed, gamma)
  raise UserError(
      f"rejection sampling kept {count} of {proposed} proposals ({count / proposed:.2%}) in "
      f"{max_rounds} rounds, short of {num}: raise max_rounds, or check that D's logits "
      f"are not far below log_m={log_m:.3g} almost everywhere")


class Chains(NamedTuple):
  """What `metropolis_hastings` returns."""
  samples: np.ndarray      # (num, ...) each chain's state after its last proposal
  acceptance_rate: float   # moves accepted / proposals made, over every chain and step
  moved: float             # fraction of chains that left their start (restarted: its restart)
  proposals_per_sample: float  # proposals of G per chain: its start when it is one, its
                               # steps, and a restart's


def mh_move(key: jax.Array, x: jax.Array, logits: jax.Array, proposal: jax.Array,
            proposal_logits: jax.Array) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """One independence Metropolis-Hastings step of a batch of chains at `x` (logits `logits`):
  (new states, their logits, which chains moved), each chain moving to its `proposal` with
  probability min(1, exp(proposal_logits - logits)), the draw from `key`. Traceable."""
  accept = jnp.log(jax.random.uniform(key, logits.shape)) < proposal_logits - logits
  x = jnp.where(accept.reshape(accept.shape + (1,) * (x.ndim - 1)), proposal, x)
  return x, jnp.where(accept, proposal_logits, logits), accept


def _chain_steps(key: jax.Array, propose: Callable[[jax.Array, int], jax.Array],
                 score: Callable[[jax.Array], jax.Array], x: jax.Array, steps: int,
                 offset: int = 0):
  """(states, moves each chain accepted, the first proposals) of chains at `x` after `steps`
  proposals, step t's from fold_in(key, offset + t). A chain moved iff it accepted one."""
  logits = jnp.asarray(score(x), jnp.float32)
  accepted, first = jnp.zeros((len(x),), jnp.int32), None
  for t in range(offset + 1, offset + steps + 1):
    k_propose, k_accept = jax.random.split(jax.random.fold_in(key, t))
    proposal = propose(k_propose, len(x))
    first = proposal if first is None else first
    proposal_logits = jnp.asarray(score(proposal), jnp.float32)
    x, logits, accept = mh_move(k_accept, x, logits, proposal, proposal_logits)
    accepted = accepted + accept
  return x, accepted, first


def metropolis_hastings(key: jax.Array, propose: Callable[[jax.Array, int], jax.Array],
                        score: Callable[[jax.Array], jax.Array], num: int,
                        steps: int, start: Optional[jax.Array] = None) -> Chains:
  """`num` samples, each the state of an independence Metropolis-Hastings chain after
  `steps` proposals of `propose(key, n)`, moves accepted with probability
  min(1, exp(score(x') - score(x))), `score` giving D's logits (module docstring). `start`
  (num, ...) real points the chains start at (then steps >= 1; a chain that takes none of
  its proposals restarts from its first one for `steps` more, with proposals from
  fold_in(key, steps + t)), else a proposal each."""
  if num < 1 or steps < 0:
    raise ValueError(f"num must be >= 1 and steps >= 0, got {num}, {steps}")
  if start is not None and (steps < 1 or len(start) != num):
    raise ValueError(f"chains started at data need steps >= 1 and num={num} starts, got "
                     f"{steps} and {len(start)}")
  x = propose(jax.random.fold_in(key, 0), num) if start is None else jnp.asarray(start)
  x, accepted, first = _chain_steps(key, propose, score, x, steps)
  proposals = num * steps
  stuck = accepted == 0
  if start is not None and bool(stuck.any()):  # never a real point: restart from G
    again, accepted_again, _ = _chain_steps(key, propose, score, first, steps, offset=steps)
    x = jnp.where(stuck.reshape(stuck.shape + (1,) * (x.ndim - 1)), again, x)
    accepted = accepted + jnp.where(stuck, accepted_again, 0)
    proposals += int(stuck.sum()) * steps
  rate = int(accepted.sum()) / proposals if proposals else 0.0
  drawn = proposals + (num if start is None else 0)  # (a start from G is a proposal too)
  return Chains(np.asarray(x), rate, float((accepted > 0).mean()), drawn / num)
