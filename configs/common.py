"""Config sections every experiment shares: loss, constraints, penalties, optimizer, EMA,
logging and checkpoints. Each experiment file (anime.py, toy_ring.py, ...) builds its
config from these and its own data/model/train sections, then overrides values.
"""

import ml_collections


def loss(name: str = "non_saturating") -> ml_collections.ConfigDict:
  """config.loss: which GAN loss, and the options of the losses that take any."""
  config = ml_collections.ConfigDict()
  # minimax | non_saturating | least_squares | wasserstein | hinge | relativistic |
  # relativistic_average | f_kl | f_reverse_kl | f_jensen_shannon | f_pearson | f_squared_hellinger
  config.name = name
  # Options of the losses that take any (used when that loss is chosen).
  config.least_squares = ml_collections.ConfigDict(
      dict(real_target=1.0, fake_target=0.0, g_target=1.0))  # LSGAN's b, a, c
  return config


def constraint() -> ml_collections.ConfigDict:
  """config.constraint: Lipschitz constraints, optax projections applied after each update."""
  config = ml_collections.ConfigDict()
  config.g = ""  # '' | weight_clip | spectral_norm_projection
  config.d = ""  # '' | weight_clip | spectral_norm_projection
  config.pattern = r"(^|/)kernel$"  # which parameters (regex on the path)
  config.weight_clip = ml_collections.ConfigDict(dict(clip=0.01))
  config.spectral_norm_projection = ml_collections.ConfigDict(
      dict(target=1.0, steps=1))  # largest singular value bound; power iterations per update
  return config


def penalty() -> ml_collections.ConfigDict:
  """config.penalty: discriminator penalties (need grad_x D), added to D's loss; any combination."""
  config = ml_collections.ConfigDict()
  config.use = ""  # comma-separated: wgan_gp, dragan, r1, r2 ('' for none)
  # weight multiplies the penalty; every > 1 applies it every N iterations, scaled by N.
  config.wgan_gp = ml_collections.ConfigDict(dict(weight=10.0, every=1, one_sided=False))
  config.dragan = ml_collections.ConfigDict(dict(weight=10.0, every=1, c=0.5))
  config.r1 = ml_collections.ConfigDict(dict(weight=10.0, every=1))
  config.r2 = ml_collections.ConfigDict(dict(weight=10.0, every=1))
  return config


def optim(lr: float = 2e-4, betas=(0.5, 0.999)) -> ml_collections.ConfigDict:
  """config.optim: one optimizer family, per-network learning rates and betas."""
  config = ml_collections.ConfigDict()
  config.name = "adam"      # adam | rmsprop | sgd, for both networks
  config.g_lr = lr          # generator learning rate
  config.d_lr = lr          # discriminator learning rate
  config.g_betas = betas    # generator Adam (b1, b2)
  config.d_betas = betas    # discriminator Adam (b1, b2)
  return config


def ema(decay: float = 0.999) -> ml_collections.ConfigDict:
  """config.ema: the generator weight average used for samples."""
  config = ml_collections.ConfigDict()
  config.decay = decay  # EMA of generator weights used for samples (0: no averaging)
  config.rampup = True  # use min(decay, (1+t)/(10+t)) so early EMA tracks G
  return config


def log(every: int = 100) -> ml_collections.ConfigDict:
  """config.log: how often metrics are fetched, checked for NaN/Inf and written."""
  config = ml_collections.ConfigDict()
  config.every = every  # metrics, progress line and NaN check every N iterations
  config.diagnostics = True  # also D's Lipschitz/gradient/accuracy diagnostics (gan_jax/diagnostics.py)
  return config


def checkpoint(every: int = 2000) -> ml_collections.ConfigDict:
  """config.checkpoint: how often the full training state is saved, and how many are kept."""
  config = ml_collections.ConfigDict()
  config.every = every  # save the full training state every N iterations
  config.keep = 3       # keep the newest K checkpoints (0: keep all)
  return config
