"""GANs on discrete tokens, on a toy language: the lectures' account of why text is hardest.

The lectures: a text generator samples discrete tokens, and sampling (an argmax) has no
gradient, so D's judgement cannot flow back into G; text GANs therefore train G by
reinforcement learning or through a continuous relaxation. This module makes that
measurable with the smallest language that shows it.

The language: `num_words` fixed "words", each `length` tokens over a vocabulary of
`vocab` (drawn once from `language_seed`, all distinct); a real sample is a uniformly
chosen word as a (length, vocab) one-hot array. G is an MLP from z to per-position
logits (length, vocab), defining p(x | z) as independent categoricals per position; D
is an MLP on the flattened (length * vocab) input. How G's output reaches D in training
(`estimator`):
  argmax            one_hot(argmax(logits)): what sampling a token does; its gradient is
                    exactly zero, so G never learns.
  softmax           softmax(logits): the continuous relaxation fed to D as it is (D can
                    tell soft vectors from one-hots).
  gumbel_softmax    softmax((logits + g) / temperature), g ~ Gumbel: a relaxed sample.
  straight_through  one_hot(argmax(logits + g)) forward, gumbel_softmax's gradient backward
                    (the straight-through Gumbel estimator): D sees real one-hots.
  reinforce         a sampled one-hot x ~ p(x | z), no gradient through it; G follows the
                    score-function (REINFORCE) gradient of E[log D(x)], with the batch mean
                    as baseline: loss -mean((log D(x) - b) * log p(x | z)).
The differentiable estimators train G on the non-saturating loss -log D(G(z)); D always
trains on the non-saturating BCE loss. Evaluation samples x ~ p(x | z) (fixed z and
Gumbel noise) for every estimator and counts the samples that are words of the
language (`valid`) and the words generated at least `min_count` times (`words_covered`):
the discrete analogues of the ring's high-quality fraction and modes covered.

Pretraining (the lectures: text GANs usually need it). `Settings.generator` picks G's
model of p(x | z):
  factorised      the MLP above: positions independent given z.
  autoregressive  p(x | z) = prod_t p(x_t | x_<t, z): one MLP scores position t from z,
                  the tokens before t and t itself (`AutoregressiveTokenGenerator`); G
                  emits its tokens one position at a time, each estimator applied per
                  position, and what it emitted (one-hot or relaxed) is the next
                  position's input, so relaxed gradients also flow through the prefix.
`Settings.pretrain_steps` > 0 first trains G alone by maximum likelihood on real words
(z drawn from its prior: an autoregressive G can model the language without z; a
factorised one can only learn each position's marginal), then starts the GAN from that
G with a fresh optimizer state and an untrained D. `Settings.d_pretrain_steps` > 0 then
trains D alone, on real words against that G's training-time output (SeqGAN's recipe
pretrains both), and the GAN starts from that D and its optimizer state.

Training from scratch (the lectures: ScratchGAN did, with many tricks). Besides a large
batch (`Settings.batch_size`), ScratchGAN's D scores every prefix of a sequence and G's
REINFORCE credits each token with the discounted sum of the scores from its position on,
and its D is regularised. `Settings.rewards` picks D's judgement:
  sequence        one score per word (TokenDiscriminator): every token of a sample gets
                  the same reward, log D(x).
  dense           one score per prefix (PrefixDiscriminator: D_t(x) from x[:, :t+1] and t),
                  each trained as a real/fake classifier; token t's reward is the return
                  R_t = sum_{s >= t} discount^(s - t) log D_s(x) (`discounted_returns`),
                  with the batch mean of R_t as position t's baseline. The differentiable
                  estimators train G on the mean over positions of -log D_t(G(z)).
`Settings.d_l2` adds d_l2 * (sum of D's squared weights) to D's loss (and to its d_loss
metric). `Settings.baseline` picks REINFORCE's baseline b (per position with dense rewards):
  batch           the batch mean of the rewards (default).
  moving_average  ScratchGAN's global moving average over training: iteration 0 uses its
                  batch mean m_0 and sets b = m_0; iteration t > 0 uses the b of the
                  iterations before it (independent of its own samples, so the estimate
                  is unbiased), then b <- decay * b + (1 - decay) * m_t
                  (`Settings.baseline_decay`). TextState.reward_baseline carries b.
"""

from typing import Any, Dict, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import lab
from gan_jax.registry import check_choice

ESTIMATORS = ("argmax", "softmax", "gumbel_softmax", "straight_through", "reinforce")
GENERATORS = ("factorised", "autoregressive")
REWARDS = ("sequence", "dense")
BASELINES = ("batch", "moving_average")
_SAMPLE_STREAM = 0x74657874  # 'text': evaluation's fixed z and Gumbel noise
# 'mle': pretraining's stream, folded into the run's key like the GAN's step numbers, so
# GAN runs stay below it
_PRETRAIN_STREAM = 0x6d6c65
_D_PRETRAIN_STREAM = 0x64707265  # 'dpre': D's pretraining, above every GAN step too


class Settings(NamedTuple):
  """The toy language, the networks and the training of the discrete-token lab."""
  num_words: int = 16
  length: int = 5
  vocab: int = 8
  language_seed: int = 0
  latent_dim: int = 16
  width: int = 128
  depth: int = 2
  batch_size: int = 256
  lr: float = 1e-3
  betas: tuple = (0.5, 0.9)
  temperature: float = 0.5  # gumbel_softmax and straight_through
  generator: str = "factorised"  # G's model of p(x | z): one of GENERATORS
  pretrain_steps: int = 0   # G's maximum-likelihood iterations on real words before the GAN
  d_pretrain_steps: int = 0  # then D's iterations on real words against that G's samples
  rewards: str = "sequence"  # D's judgement: one score per word or per prefix (REWARDS)
  discount: float = 0.23    # dense rewards: the return's discount (ScratchGAN's value)
  d_l2: float = 0.0         # weight of the L2 penalty on D's weights (kernels and biases)
  baseline: str = "batch"   # REINFORCE's baseline: one of BASELINES (module docstring)
  baseline_decay: float = 0.9  # moving_average: the weight of the past in each update


class TextState(NamedTuple):
  """Both networks' parameters and optimizer states (and REINFORCE's moving-average
  baseline when Settings.baseline is moving_average; else None)."""
  g_params: Any
  g_opt_state: Any
  d_params: Any
  d_opt_state: Any
  reward_baseline: Any = None


def make_language(settings: Settings = Settings()) -> np.ndarray:
  """The language's words, int32 (num_words, length): distinct, drawn from language_seed."""
  if settings.num_words > settings.vocab ** settings.length:
    raise ValueError(f"{settings.num_words} distinct words do not fit in {settings.vocab} tokens "
                     f"x length {settings.length}")
  rng = np.random.default_rng(settings.language_seed)
  words = set()
  while len(words) < settings.num_words:
    words.add(tuple(rng.integers(0, settings.vocab, settings.length).tolist()))
  return np.array(sorted(words), np.int32)


def real_batch(words: jax.Array, key: jax.Array, n: int, vocab: int) -> jax.Array:
  """n uniformly chosen words as one-hots (n, length, vocab)."""
  ids = jax.random.randint(key, (n,), 0, words.shape[0])
  return jax.nn.one_hot(words[ids], vocab)


class TokenGenerator(nn.Module):
  """z (batch, latent_dim) -> per-position logits (batch, length, vocab)."""
  length: int
  vocab: int
  width: int = 128
  depth: int = 2

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    x = z
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width)(x))
    return nn.Dense(self.length * self.vocab)(x).reshape(z.shape[0], self.length, self.vocab)


def _masked_rows(tokens: jax.Array, mask: jax.Array, positions: jax.Array) -> jax.Array:
  """(batch, rows, length * vocab + length): row r holds `tokens` (batch, length, vocab) with
  the positions s where mask[r, s] is 0 zeroed, flattened, then positions[r] (a one-hot of
  the position row r scores): the input of the causal networks below."""
  batch, rows = tokens.shape[0], mask.shape[0]
  masked = (mask[None, :, :, None] * tokens[:, None]).reshape(batch, rows, -1)
  return jnp.concatenate(
      [masked, jnp.broadcast_to(positions, (batch, rows, positions.shape[-1]))], axis=-1)


class AutoregressiveTokenGenerator(nn.Module):
  """(z (batch, latent_dim), tokens (batch, length, vocab)) -> logits (batch, length, vocab):
  position t's logits from z, tokens[:, :t] and t only (tokens at t and after are ignored).
  With `position` = t, only position t's logits (batch, vocab)."""
  length: int
  vocab: int
  width: int = 128
  depth: int = 2

  @nn.compact
  def __call__(self, z: jax.Array, tokens: jax.Array, position: Any = None) -> jax.Array:
    batch, length = z.shape[0], self.length
    before = jnp.tril(jnp.ones((length, length), tokens.dtype), -1)  # [t, s] = s < t
    where = jnp.eye(length, dtype=z.dtype)
    if position is not None:  # one row of the all-positions computation below (may be traced)
      before = jax.lax.dynamic_slice_in_dim(before, position, 1)
      where = jax.lax.dynamic_slice_in_dim(where, position, 1)
    rows = before.shape[0]
    x = jnp.concatenate([jnp.broadcast_to(z[:, None], (batch, rows, z.shape[-1])),
                         _masked_rows(tokens, before, where)], axis=-1)
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width)(x))
    logits = nn.Dense(self.vocab)(x)
    return logits if position is None else logits[:, 0]


class TokenDiscriminator(nn.Module):
  """token arrays (batch, length, vocab), one-hot or relaxed -> logits (batch,)."""
  width: int = 128
  depth: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for _ in range(self.depth):
      x = nn.leaky_relu(nn.Dense(self.width)(x), 0.2)
    return nn.Dense(1)(x).reshape(x.shape[0])


class PrefixDiscriminator(nn.Module):
  """token arrays (batch, length, vocab), one-hot or relaxed -> logits (batch, length): the
  score at t from x[:, :t+1] and t only (tokens after t are ignored)."""
  width: int = 128
  depth: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    length = x.shape[1]
    upto = jnp.tril(jnp.ones((length, length), x.dtype))  # [t, s] = s <= t
    h = _masked_rows(x, upto, jnp.eye(length, dtype=x.dtype))
    for _ in range(self.depth):
      h = nn.leaky_relu(nn.Dense(self.width)(h), 0.2)
    return nn.Dense(1)(h)[..., 0]


def discounted_returns(rewards: jax.Array, discount: float) -> jax.Array:
  """R_t = sum_{s >= t} discount^(s - t) rewards_s along the last axis (rewards (..., length))."""
  length = rewards.shape[-1]
  gap = jnp.arange(length)[None, :] - jnp.arange(length)[:, None]  # [t, s] = s - t
  weights = jnp.where(gap >= 0, jnp.asarray(discount, rewards.dtype) ** jnp.maximum(gap, 0), 0)
  return rewards @ weights.T


def tokens_for_d(logits: jax.Array, key: jax.Array, estimator: str,
                 temperature: float) -> jax.Array:
  """What D sees of G's output in training under `estimator` (module docstring); for
  reinforce, a sampled one-hot with no gradient."""
  vocab = logits.shape[-1]
  if estimator == "argmax":
    return jax.nn.one_hot(jnp.argmax(logits, -1), vocab)
  if estimator == "softmax":
    return jax.nn.softmax(logits)
  gumbel = jax.random.gumbel(key, logits.shape)
  soft = jax.nn.softmax((logits + gumbel) / temperature)
  if estimator == "gumbel_softmax":
    return soft
  hard = jax.nn.one_hot(jnp.argmax(logits + gumbel, -1), vocab)
  if estimator == "straight_through":
    return hard + soft - jax.lax.stop_gradient(soft)
  return hard  # reinforce: argmax(logits + g) is a sample of p(x | z)


def reinforce_surrogate(logits: jax.Array, x: jax.Array, reward: jax.Array,
                        baseline: Any = None) -> jax.Array:
  """-mean_i (r_i - b) log p(x_i): its gradient w.r.t. the logits (batch, length, vocab)
  is the REINFORCE estimate of -grad E_{x~p}[reward] for the sampled one-hots x and their
  rewards (batch,) (no gradient flows into x, the rewards or b), with baseline b: the
  batch mean of the rewards unless `baseline` is given. Rewards (batch, length) credit
  each token separately: -mean_i sum_t (r_it - b_t) log p(x_it | x_i<t, z), each
  position with its own baseline (given: shape (length,))."""
  reward = jax.lax.stop_gradient(reward)
  if baseline is None:
    baseline = jnp.mean(reward, axis=0)
  baseline = jax.lax.stop_gradient(baseline)
  if reward.ndim == 2:
    log_p = jnp.sum(jax.nn.log_softmax(logits) * jax.lax.stop_gradient(x), axis=2)
    return -jnp.mean(jnp.sum((reward - baseline) * log_p, axis=1))
  log_p = jnp.sum(jax.nn.log_softmax(logits) * jax.lax.stop_gradient(x), axis=(1, 2))
  return -jnp.mean((reward - baseline) * log_p)


def check_settings(settings: Settings) -> None:
  """Raises ValueError naming the field when `settings` cannot train."""
  check_choice("generator", settings.generator, GENERATORS)
  check_choice("rewards", settings.rewards, REWARDS)
  check_choice("baseline", settings.baseline, BASELINES)
  if not 0.0 <= settings.baseline_decay < 1.0:
    raise ValueError(f"baseline_decay must be in [0, 1), got {settings.baseline_decay}")
  if settings.pretrain_steps < 0:
    raise ValueError(f"pretrain_steps must be >= 0, got {settings.pretrain_steps}")
  if settings.d_pretrain_steps < 0:
    raise ValueError(f"d_pretrain_steps must be >= 0, got {settings.d_pretrain_steps}")
  if not 0.0 <= settings.discount <= 1.0:
    raise ValueError(f"discount must be in [0, 1], got {settings.discount}")
  if settings.d_l2 < 0:
    raise ValueError(f"d_l2 must be >= 0, got {settings.d_l2}")


def _networks(settings: Settings):
  check_settings(settings)
  generator = (AutoregressiveTokenGenerator if settings.generator == "autoregressive"
               else TokenGenerator)
  discriminator = PrefixDiscriminator if settings.rewards == "dense" else TokenDiscriminator
  return (generator(settings.length, settings.vocab, settings.width, settings.depth),
          discriminator(settings.width, settings.depth))


def _init_generator(generator: nn.Module, key: jax.Array, settings: Settings) -> Any:
  z = jnp.zeros((1, settings.latent_dim))
  if isinstance(generator, AutoregressiveTokenGenerator):
    return generator.init(key, z, jnp.zeros((1, settings.length, settings.vocab)))["params"]
  return generator.init(key, z)["params"]


def generate(generator: nn.Module, params: Any, z: jax.Array, key: jax.Array, estimator: str,
             temperature: float):
  """(what D sees, logits): G's training-time output for z under `estimator` (tokens_for_d;
  an autoregressive G emits one position at a time, per-position noise from fold_in(key, t),
  each emitted token the next positions' input) and the logits (batch, length, vocab) it
  emitted from (for reinforce, log p(x | z) of the emitted x)."""
  if not isinstance(generator, AutoregressiveTokenGenerator):
    logits = generator.apply({"params": params}, z)
    return tokens_for_d(logits, key, estimator, temperature), logits
  def emit(tokens, t):  # position t, given the tokens emitted before it
    logits = generator.apply({"params": params}, z, tokens, t)
    token = tokens_for_d(logits[:, None], jax.random.fold_in(key, t), estimator, temperature)
    return tokens.at[:, t].set(token[:, 0]), logits
  tokens = jnp.zeros((z.shape[0], generator.length, generator.vocab), z.dtype)
  tokens, emitted = jax.lax.scan(emit, tokens, jnp.arange(generator.length))
  return tokens, jnp.swapaxes(emitted, 0, 1)


def log_likelihood(generator: nn.Module, params: Any, z: jax.Array, x: jax.Array) -> jax.Array:
  """log p(x | z) (batch,) of one-hot token arrays x (batch, length, vocab) under G."""
  if isinstance(generator, AutoregressiveTokenGenerator):
    logits = generator.apply({"params": params}, z, x)  # teacher forcing
  else:
    logits = generator.apply({"params": params}, z)
  return jnp.sum(jax.nn.log_softmax(logits) * x, axis=(1, 2))


def train_seeds(estimator: str, seeds: Sequence[int], num_steps: int,
                settings: Settings = Settings()):
  """(final states, per-iteration metrics {d_loss, g_loss, g_grad_norm, d_accuracy (of the
  whole-word judgement: with dense rewards, the last prefix's)}, with {pretrain_nll}
  (seeds, settings.pretrain_steps) when G is pretrained and {d_pretrain_loss,
  d_pretrain_accuracy} (seeds, settings.d_pretrain_steps) when D is and {reward_baseline,
  reward_mean} (the baseline REINFORCE used and the batch's mean reward, each averaged over
  positions) with a moving-average baseline) of the token GAN
  with `estimator`, trained from each seed (vmapped; leading seed axis). `num_steps` GAN
  iterations follow settings.pretrain_steps maximum-likelihood ones and
  settings.d_pretrain_steps D ones (0 GAN iterations: the networks as pretraining left
  them)."""
  check_choice("estimator", estimator, ESTIMATORS)
  if not 0 <= num_steps < _PRETRAIN_STREAM:
    raise ValueError(f"num_steps must be in [0, {_PRETRAIN_STREAM}), got {num_steps}")
  generator, discriminator = _networks(settings)
  words = jnp.asarray(make_language(settings))
  tx = optax.adam(settings.lr, *settings.betas)
  n, shape = settings.batch_size, (settings.length, settings.vocab)
  dense = settings.rewards == "dense"
  moving_baseline = estimator == "reinforce" and settings.baseline == "moving_average"

  def run(seed):
    k_g, k_d, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
    g_params = _init_generator(generator, k_g, settings)
    d_params = discriminator.init(k_d, jnp.zeros((1, *shape)))["params"]
    metrics = {}
    if settings.pretrain_steps:
      k_pretrain = jax.random.fold_in(k_run, _PRETRAIN_STREAM)

      def pretrain(carry, step):
        params, opt_state = carry
        key = jax.random.fold_in(k_pretrain, step)
        real = real_batch(words, jax.random.fold_in(key, 0), n, settings.vocab)
        z = jax.random.normal(jax.random.fold_in(key, 1), (n, settings.latent_dim))
        nll, grads = jax.value_and_grad(
            lambda p: -jnp.mean(log_likelihood(generator, p, z, real)))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), nll
      (g_params, _), metrics["pretrain_nll"] = jax.lax.scan(
          pretrain, (g_params, tx.init(g_params)), jnp.arange(settings.pretrain_steps))
    d_fn = lambda params, x: discriminator.apply({"params": params}, x)

    def d_update(d_params, d_opt_state, g_params, key):
      """One D update on reals and G's training-time output: (params, opt state, loss,
      accuracy of the whole-word judgement)."""
      k_real, k_z, k_noise = (jax.random.fold_in(key, i) for i in range(3))
      fake, _ = generate(generator, g_params,
                         jax.random.normal(k_z, (n, settings.latent_dim)), k_noise, estimator,
                         settings.temperature)
      fake = jax.lax.stop_gradient(fake)
      real = real_batch(words, k_real, n, settings.vocab)

      def d_loss(params):  # logits (n,) or, dense, (n, length): every prefix classified
        real_logits, fake_logits = d_fn(params, real), d_fn(params, fake)
        loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
        if settings.d_l2:
          loss += settings.d_l2 * sum(jnp.sum(w ** 2) for w in jax.tree.leaves(params))
        if dense:
          real_logits, fake_logits = real_logits[:, -1], fake_logits[:, -1]
        accuracy = 0.5 * (jnp.mean(real_logits > 0) + jnp.mean(fake_logits < 0))
        return loss, accuracy
      (d_value, accuracy), grads = jax.value_and_grad(d_loss, has_aux=True)(d_params)
      updates, d_opt_state = tx.update(grads, d_opt_state, d_params)
      return optax.apply_updates(d_params, updates), d_opt_state, d_value, accuracy

    d_opt_state = tx.init(d_params)
    if settings.d_pretrain_steps:
      k_d_pretrain = jax.random.fold_in(k_run, _D_PRETRAIN_STREAM)

      def d_pretrain(carry, step):
        params, opt_state = carry
        params, opt_state, loss, accuracy = d_update(
            params, opt_state, g_params, jax.random.fold_in(k_d_pretrain, step))
        return (params, opt_state), (loss, accuracy)
      (d_params, d_opt_state), (metrics["d_pretrain_loss"], metrics["d_pretrain_accuracy"]) = (
          jax.lax.scan(d_pretrain, (d_params, d_opt_state),
                       jnp.arange(settings.d_pretrain_steps)))
    reward_baseline = None
    if moving_baseline:  # set from iteration 0's batch mean before it is used
      reward_baseline = jnp.zeros((settings.length,) if dense else ())
    state = TextState(g_params, tx.init(g_params), d_params, d_opt_state, reward_baseline)

    def body(state, step):
      key = jax.random.fold_in(k_run, step)
      k_d, k_gz, k_gnoise = key, jax.random.fold_in(key, 3), jax.random.fold_in(key, 4)
      d_params, d_opt_state, d_value, accuracy = d_update(
          state.d_params, state.d_opt_state, state.g_params, k_d)

      # G: one update against the new D, on fresh z.
      z = jax.random.normal(k_gz, (n, settings.latent_dim))

      def g_loss(params):
        x, logits = generate(generator, params, z, k_gnoise, estimator, settings.temperature)
        if estimator != "reinforce":
          return jnp.mean(jax.nn.softplus(-d_fn(d_params, x)))
        reward = -jax.nn.softplus(-d_fn(d_params, x))  # log D(x), or log D_t(x) per prefix
        if dense:
          reward = discounted_returns(reward, settings.discount)
        if not moving_baseline:
          return reinforce_surrogate(logits, x, reward)
        batch_mean = jnp.mean(reward, axis=0)
        baseline = jnp.where(step == 0, batch_mean, state.reward_baseline)
        return reinforce_surrogate(logits, x, reward, baseline), (batch_mean, baseline)
      step_metrics = {}
      reward_baseline = state.reward_baseline
      if moving_baseline:
        (g_value, (batch_mean, used)), grads = jax.value_and_grad(g_loss, has_aux=True)(
            state.g_params)
        decay = settings.baseline_decay
        reward_baseline = jnp.where(step == 0, batch_mean,
                                    decay * state.reward_baseline + (1 - decay) * batch_mean)
        step_metrics["reward_baseline"] = jnp.mean(used)
        step_metrics["reward_mean"] = jnp.mean(batch_mean)
      else:
        g_value, grads = jax.value_and_grad(g_loss)(state.g_params)
      updates, g_opt_state = tx.update(grads, state.g_opt_state, state.g_params)
      g_params = optax.apply_updates(state.g_params, updates)
      step_metrics.update({"d_loss": d_value, "g_loss": g_value,
                           "g_grad_norm": optax.tree.norm(grads), "d_accuracy": accuracy})
      return TextState(g_params, g_opt_state, d_params, d_opt_state, reward_baseline), step_metrics

    state, gan_metrics = jax.lax.scan(body, state, jnp.arange(num_steps))
    return state, {**gan_metrics, **metrics}

  return lab.jit_long_run(
      jax.vmap(run), num_steps + settings.pretrain_steps + settings.d_pretrain_steps)(
      jnp.asarray(seeds, jnp.uint32))


def sample_tokens(states: TextState, num: int = 2000,
                  settings: Settings = Settings()) -> np.ndarray:
  """(seeds, num, length) int32 token samples x ~ p(x | z) of each seed's G, from fixed z
  and Gumbel noise (the same for every seed and estimator)."""
  generator, _ = _networks(settings)
  key = jax.random.PRNGKey(_SAMPLE_STREAM)
  z = jax.random.normal(jax.random.fold_in(key, 0), (num, settings.latent_dim))
  gumbel = jax.random.gumbel(jax.random.fold_in(key, 1), (num, settings.length, settings.vocab))

  def sample(params):
    if not isinstance(generator, AutoregressiveTokenGenerator):
      return jnp.argmax(generator.apply({"params": params}, z) + gumbel, -1)
    def emit(tokens, t):
      logits = generator.apply({"params": params}, z, tokens, t) + gumbel[:, t]
      return tokens.at[:, t].set(jax.nn.one_hot(jnp.argmax(logits, -1), settings.vocab)), None
    tokens = jnp.zeros((num, settings.length, settings.vocab))
    return jnp.argmax(jax.lax.scan(emit, tokens, jnp.arange(settings.length))[0], -1)
  return np.asarray(jax.jit(jax.vmap(sample))(states.g_params))


def language_metrics(tokens: np.ndarray, words: np.ndarray,
                     min_count: int = 0) -> Dict[str, float]:
  """{'valid': fraction of the samples (num, length) that are words, 'words_covered': words
  generated at least min_count times (default: 1% of the samples, at least 1)}."""
  min_count = min_count or max(1, len(tokens) // 100)
  index = {tuple(w): i for i, w in enumerate(words.tolist())}
  counts = np.zeros(len(words), np.int64)
  for row in tokens.tolist():
    i = index.get(tuple(row))
    if i is not None:
      counts[i] += 1
  return {"valid": float(counts.sum()) / len(tokens),
          "words_covered": float(np.sum(counts >= min_count))}
