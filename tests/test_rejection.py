"""G's samples corrected by D (rejection sampling, Metropolis-Hastings): exact with the true
density ratio, and what rejection does for a toy GAN with a trained D."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import toy_ring
from gan_jax import lab, rejection
from gan_jax.errors import UserError

pytestmark = pytest.mark.mesh_devices(1)

# Proposal N(0.5, 1.5^2), target N(0, 1): log p(x) - log q(x) = log 1.5 - x^2 / 2 +
# (x - 0.5)^2 / 4.5 peaks at x = -0.4 (derivative -x + (x - 0.5) / 2.25 = 0) at
# log 1.5 - 0.08 + 0.18, so exact rejection keeps a fraction exp(-that) = 0.6032.
PROPOSAL_MEAN, PROPOSAL_STD = 0.5, 1.5
LOG_M = math.log(1.5) - 0.08 + 0.18


def propose(key, n):
  return PROPOSAL_MEAN + PROPOSAL_STD * jax.random.normal(key, (n, 1))


def true_log_ratio(x):
  """log N(x; 0, 1) - log N(x; 0.5, 1.5^2): the logit of the optimal D for these two."""
  x = x[:, 0]
  return (jnp.log(PROPOSAL_STD) - 0.5 * x**2
          + 0.5 * ((x - PROPOSAL_MEAN) / PROPOSAL_STD) ** 2)


def assert_follows_the_target(x):
  """20,000 draws `x` look like N(0, 1): mean, std (sampling errors ~0.007 and ~0.005) and
  P(x > 1) = 0.1587."""
  assert abs(x.mean()) < 0.03 and abs(x.std() - 1.0) < 0.03
  assert abs(np.mean(x > 1.0) - 0.1587) < 0.01


def test_acceptance_is_the_clipped_ratio_to_the_envelope():
  np.testing.assert_allclose(rejection.acceptance(jnp.array([0.0, -1.0, 2.0]), 1.0),
                             [math.exp(-1), math.exp(-2), 1.0], rtol=1e-6)


def test_drs_shift_is_the_exact_rule_at_gamma_0_and_a_logistic_shift_otherwise():
  logits = jnp.array([math.log(0.25), -3.0, -0.5, 0.0, 2.0])
  np.testing.assert_allclose(rejection.shifted_acceptance(logits, 0.0, 0.0),
                             rejection.acceptance(logits, 0.0), atol=1e-5)
  # exp(a) = 0.25: F = log(0.25 / 0.75) = -log 3, so gamma = log 3 keeps 1 in 10, -log 3 half.
  np.testing.assert_allclose(rejection.shifted_acceptance(logits[:1], 0.0, math.log(3.0)),
                             [0.1], rtol=1e-5)
  np.testing.assert_allclose(rejection.shifted_acceptance(logits[:1], 0.0, -math.log(3.0)),
                             [0.5], rtol=1e-5)
  # gamma is the burn-in's F quantile; the rate kept is the mean shifted probability.
  result = rejection.rejection_sample(jax.random.PRNGKey(3), propose, true_log_ratio, 5000,
                                      log_m=LOG_M, batch=5000, burn_in=20000,
                                      gamma_quantile=0.5)
  burn_key = jax.random.split(jax.random.PRNGKey(3))[0]
  expected_gamma = jnp.quantile(rejection.log_odds_to_envelope(
      true_log_ratio(propose(burn_key, 20000)), LOG_M), 0.5)
  assert result.gamma == pytest.approx(float(expected_gamma), rel=1e-6) and result.log_m == LOG_M
  fresh = true_log_ratio(propose(jax.random.PRNGKey(4), 200000))
  mean_kept = float(jnp.mean(rejection.shifted_acceptance(fresh, LOG_M, result.gamma)))
  assert abs(result.acceptance_rate - mean_kept) < 0.015
  assert rejection.rejection_sample(jax.random.PRNGKey(3), propose, true_log_ratio, 10,
                                    log_m=LOG_M, batch=100).gamma is None
  with pytest.raises(ValueError, match=r"gamma_quantile must be in \(0, 1\)"):
    rejection.rejection_sample(jax.random.PRNGKey(3), propose, true_log_ratio, 1,
                               gamma_quantile=1.0)


def test_with_the_optimal_d_the_kept_samples_follow_the_data():
  result = rejection.rejection_sample(jax.random.PRNGKey(0), propose, true_log_ratio, 20000,
                                      log_m=LOG_M, batch=5000)
  x = result.samples[:, 0]
  assert result.samples.shape == (20000, 1) and result.log_m == LOG_M
  assert_follows_the_target(x)
  assert abs(result.acceptance_rate - math.exp(-LOG_M)) < 0.01
  assert result.proposed % 5000 == 0


def test_burn_in_estimates_the_envelope_from_below():
  result = rejection.rejection_sample(jax.random.PRNGKey(1), propose, true_log_ratio, 5000,
                                      burn_in=20000)
  assert LOG_M - 0.01 < result.log_m <= LOG_M + 1e-6  # 20,000 draws come close to the peak
  assert abs(result.samples.mean()) < 0.05
  # A lower quantile lowers the envelope: more is kept, the highest ratios are clipped.
  clipped = rejection.rejection_sample(jax.random.PRNGKey(1), propose, true_log_ratio, 5000,
                                       burn_in=20000, log_m_quantile=0.5)
  assert clipped.log_m < result.log_m and clipped.acceptance_rate > result.acceptance_rate
  with pytest.raises(ValueError, match=r"log_m_quantile must be in \(0, 1\]"):
    rejection.rejection_sample(jax.random.PRNGKey(1), propose, true_log_ratio, 1,
                               log_m_quantile=0.0)


def test_same_key_same_samples_and_clear_errors():
  first = rejection.rejection_sample(jax.random.PRNGKey(2), propose, true_log_ratio, 100,
                                     log_m=LOG_M, batch=64)
  again = rejection.rejection_sample(jax.random.PRNGKey(2), propose, true_log_ratio, 100,
                                     log_m=LOG_M, batch=64)
  np.testing.assert_array_equal(first.samples, again.samples)
  with pytest.raises(UserError, match=r"kept \d+ of 128 proposals .* short of 1000"):
    rejection.rejection_sample(jax.random.PRNGKey(2), propose, true_log_ratio, 1000,
                               log_m=LOG_M, batch=64, max_rounds=2)
  with pytest.raises(ValueError, match="num, batch and max_rounds must be >= 1"):
    rejection.rejection_sample(jax.random.PRNGKey(2), propose, true_log_ratio, 0)
  with pytest.raises(UserError, match="log_m must be finite"):
    rejection.rejection_sample(jax.random.PRNGKey(2), propose, true_log_ratio, 1,
                               log_m=float("inf"))


def test_metropolis_hastings_chains_reach_the_data_and_start_at_g():
  chains = rejection.metropolis_hastings(jax.random.PRNGKey(3), propose, true_log_ratio, 20000,
                                         steps=20)
  x = chains.samples[:, 0]
  # The independence sampler's distance to the target shrinks as (1 - 1/M)^t, 0.4^20 here.
  assert_follows_the_target(x)
  assert chains.moved > 0.99 and 0.5 < chains.acceptance_rate < 1.0
  assert chains.proposals_per_sample == 21  # its start and 20 steps
  start = rejection.metropolis_hastings(jax.random.PRNGKey(3), propose, true_log_ratio, 20000,
                                        steps=0)  # no step: G's own samples
  assert abs(start.samples.mean() - PROPOSAL_MEAN) < 0.05
  assert abs(start.samples.std() - PROPOSAL_STD) < 0.05
  assert start.moved == 0.0 and start.acceptance_rate == 0.0
  with pytest.raises(ValueError, match="steps >= 0"):
    rejection.metropolis_hastings(jax.random.PRNGKey(3), propose, true_log_ratio, 1, steps=-1)


def test_chains_started_at_data_reach_it_and_never_return_a_real_point():
  data = jax.random.normal(jax.random.PRNGKey(5), (20000, 1))  # N(0, 1): the target
  chains = rejection.metropolis_hastings(jax.random.PRNGKey(3), propose, true_log_ratio, 20000,
                                         steps=20, start=data)
  x = chains.samples[:, 0]
  assert_follows_the_target(x)
  assert chains.moved > 0.99 and not np.any(x == np.asarray(data[:, 0]))  # none at its start
  assert 20 <= chains.proposals_per_sample < 40  # restarted chains make 20 more
  # A D that rejects every proposal (it scores only the starts, far out at 100 + N(0, 1)):
  # each chain restarts from its first proposal, keeps it, and gives it, not its start.
  never = rejection.metropolis_hastings(
      jax.random.PRNGKey(3), propose, lambda x: jnp.where(x[:, 0] > 50.0, 0.0, -jnp.inf),
      20000, steps=3, start=data + 100.0)
  first_proposals = propose(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(3), 1))[0],
                            20000)
  np.testing.assert_array_equal(never.samples, first_proposals)
  assert never.moved == 0.0 and never.acceptance_rate == 0.0
  assert never.proposals_per_sample == 6
  with pytest.raises(ValueError, match="chains started at data need steps >= 1"):
    rejection.metropolis_hastings(jax.random.PRNGKey(3), propose, true_log_ratio, 2, steps=0,
                                  start=data[:2])


def test_lab_rows_refuse_unknown_methods_and_starts_before_any_work():
  config = toy_ring.get_config()
  with pytest.raises(ValueError, match="unknown method 'gibbs'; choose from: mh, rejection"):
    lab.rejection_rows(config, None, [0], method="gibbs")
  with pytest.raises(ValueError, match="unknown MH start 'noise'; choose from: data, generator"):
    lab.rejection_rows(config, None, [0], method="mh", start="noise")
  with pytest.raises(ValueError, match="rejection sampling only draws from G"):
    lab.rejection_rows(config, None, [0], start="data")


def test_a_tuned_d_corrects_a_toy_generator():
  """The ring without a regulariser (G-EMA after 500 iterations: no mode has PacGAN's 8 of
  1,000 samples, 1% lie near one) and its D tuned for 2,000 more updates against it:
  rejection keeps samples near the modes (45%) and brings back modes G under-represents (6).
  The modes' shares stay uneven (benchmarks/rejection_toy.md), so they are not asserted.
  log_m is the burn-in's 99.9th percentile: with its maximum, a run of 1,000 iterations
  kept 0.05% of the proposals."""
  config = toy_ring.get_config()
  rows = lab.rejection_gain(config, [0], num_steps=500, fine_tune_steps=2000, num=1000,
                            log_m_quantile=0.999)
  (plain_modes, plain_quality, _, one, _), (kept_modes, kept_quality, _, rate, cost) = rows[0]
  assert one == 1.0 and 0.0 < rate < 0.1 and cost >= 1 / rate  # (kept / num >= 1)
  assert kept_modes >= plain_modes + 3
  assert kept_quality > plain_quality + 0.3
