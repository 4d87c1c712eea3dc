"""Config sections every experiment shares: loss, constraints, penalties, optimizer, EMA,
logging and checkpoints. Each experiment file (dcgan.py, toy_ring.py, ...) builds its
config from these and its own data/model/train sections, then overrides values.
"""

import ml_collections


def loss(name: str = "non_saturating") -> ml_collections.ConfigDict:
  """config.loss: which GAN loss, and the options of the losses that take any."""
  config = ml_collections.ConfigDict()
  # minimax | non_saturating | least_squares | wasserstein | hinge | relativistic |
  # relativistic_average | f_kl | f_reverse_kl | f_jensen_shannon | f_pearson | f_squared_hellinger
  # | began | ebgan (these two need model.name=began: an auto-encoder D; configs/began.py)
  config.name = name
  # Options of the losses that take any (used when that loss is chosen).
  config.least_squares = ml_collections.ConfigDict(
      dict(real_target=1.0, fake_target=0.0, g_target=1.0))  # LSGAN's b, a, c
  # BEGAN's equilibrium: k (the weight of L(G(z)) in D's loss, from k0) moves by lambda_k *
  # (gamma * L(x) - L(G(z))) after each D update; gamma is the diversity ratio aimed at.
  config.began = ml_collections.ConfigDict(dict(gamma=0.5, lambda_k=0.001, k0=0.0))
  config.ebgan = ml_collections.ConfigDict(dict(margin=1.0))  # D pushes L(G(z)) up to margin
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
  """config.penalty: discriminator penalties (most need grad_x D), added to D's loss; any
  combination."""
  config = ml_collections.ConfigDict()
  config.use = ""  # comma-separated: wgan_gp, dragan, r1, r2, drift, cr, cr_fake ('' for none)
  # weight multiplies the penalty; every > 1 applies it every N iterations, scaled by N;
  # weight_final >= 0 anneals the weight to it along optim.schedule's decay (linear or
  # cosine, over its window, as R3GAN's gamma 2 -> 0.2; -1: weight throughout).
  def section(weight, **options):
    return ml_collections.ConfigDict(dict(weight=weight, every=1, weight_final=-1.0, **options))
  config.wgan_gp = section(10.0, one_sided=False)
  config.dragan = section(10.0, c=0.5)
  config.r1 = section(10.0)
  config.r2 = section(10.0)
  config.drift = section(0.001)  # E[D(x)^2], ProGAN's
  # Consistency regularisation: E[(D(x) - D(T(x)))^2] for augmentation policy T (as
  # augment.policy; CR-GAN's flip and translation; images only), on reals (cr: CR-GAN) and
  # on fakes (cr_fake; both: bCR); weight 10 in both papers.
  config.cr = section(10.0, policy="flip,translation")
  config.cr_fake = section(10.0, policy="flip,translation")
  return config


def optim(lr: float = 2e-4, betas=(0.5, 0.999)) -> ml_collections.ConfigDict:
  """config.optim: one optimizer family, per-network learning rates and betas."""
  config = ml_collections.ConfigDict()
  config.name = "adam"      # adam | rmsprop | sgd, for both networks
  config.g_lr = lr          # generator learning rate
  config.d_lr = lr          # discriminator learning rate
  config.g_betas = betas    # generator Adam (b1, b2)
  config.d_betas = betas    # discriminator Adam (b1, b2)
  config.g_orthogonal_reg = 0.0  # BigGAN's orthogonal regularisation of G's kernels (strength;
                                 # 1e-4 there; gan_jax/regularisers.py; 0: off)
  config.d_orthogonal_reg = 0.0  # the same for D's kernels
  # Both learning rates times a function of the iteration (gan_jax/optim.py: SCHEDULES):
  # constant | linear (1 until decay_start, then down to 0 at decay_iterations, as WGAN-GP's
  # and SNGAN's code decay) | cosine (1 until decay_start, then a half cosine down to
  # decay_final at decay_iterations, as R3GAN's) | step (x decay_factor every decay_every
  # iterations, as BEGAN's).
  config.schedule = "constant"
  config.decay_start = 0       # linear, cosine: the iteration where the decay starts
  config.decay_iterations = 0  # linear, cosine: the iteration where the decay ends (0:
                               # train.num_steps)
  config.decay_final = 0.0     # cosine: the multiplier it ends at
  config.beta2_final = -1.0    # linear, cosine: both networks' Adam beta2 annealed from their
                               # betas' to this along the same decay (R3GAN's 0.9 -> 0.99;
                               # -1: constant)
  config.decay_every = 0       # step: iterations between two decays
  config.decay_factor = 0.5    # step: the multiplier at each decay
  return config


def ema(decay: float = 0.999) -> ml_collections.ConfigDict:
  """config.ema: the generator weight average used for samples."""
  config = ml_collections.ConfigDict()
  config.decay = decay  # EMA of generator weights used for samples (0: no averaging)
  config.rampup = True  # use min(decay, (1+t)/(10+t)) so early EMA tracks G
  config.half_life_images = 0.0  # > 0: the decay of this half-life in images instead,
                                 # 0.5 ** (batch / half-life) (StyleGAN2-ADA's ema_kimg)
  config.half_life_final = -1.0  # >= 0: the half-life annealed from half_life_images to
                                 # this along optim.schedule's decay (R3GAN's 0 -> 500k
                                 # images; -1: constant)
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
  # Start a NEW workdir from another run's checkpoint: 'WORKDIR' (its latest), 'WORKDIR@STEP'
  # or 'WORKDIR@best' (kept by config.eval.best). The whole state carries over (step counter,
  # optimizers, EMA), so a run that collapsed can go on from before the collapse with other
  # settings, leaving the original run untouched. Ignored once this workdir has checkpoints.
  config.init_from = ""
  return config


def evaluation(every: int = 0, metrics: str = "fd_anime,kid_anime,tags,duplicates",
               num_samples: int = 5000) -> ml_collections.ConfigDict:
  """config.eval: metrics of the EMA generator's samples (gan_jax/metrics/evaluator.py).

  Used every `every` iterations during training and by
  `python -m gan_jax.evaluate --workdir=W` on saved checkpoints.
  """
  config = ml_collections.ConfigDict()
  config.every = every  # evaluate during training every N iterations (0: never)
  # Comma-separated, any of: fid, kid, is, pr, dc (Inception-v3), fd_anime, kid_anime, tags
  # (the offline anime tag classifier), afd (animeface detector), memorisation, duplicates.
  config.metrics = metrics
  config.num_samples = num_samples  # generated images per evaluation (fixed z: comparable)
  config.truncation = 0.0  # > 0: Gaussian z truncated to [-t, t] per coordinate (BigGAN's
                           # truncation trick: fidelity for variety; 0: off)
  config.truncation_psi = 1.0  # StyleGAN2's truncation trick: w <- c + psi (w - c)
                               # (1: off; other families have none)
  config.truncation_center = "global"  # psi's c: global (the tracked average w over all
                                       # labels, StyleGAN2-ADA's) | label (each sample's
                                       # label's own average w; conditional runs)
  config.truncation_center_latents = 256  # 'label': latents each label's w is averaged over
  config.mh_steps = 0  # > 0: each sample corrected by a Metropolis-Hastings chain over this
                       # many more proposals of G, taken with probability min(1, exp(logit' -
                       # logit)) of D's logits (MH-GAN; a density ratio only for a minimax or
                       # non-saturating D; gan_jax/rejection.py). 0: off
  config.mh_tune = 0  # > 0 (with mh_steps): D first trained on alone this many updates against
                      # the frozen EMA generator, on the training images outside the
                      # reference set (gan_jax/d_tuning.py), each evaluation. 0: D as saved
  config.mh_tune_loss = ""  # the loss of that tuning ('': the run's); non_saturating calibrates
                            # a hinge or Wasserstein D's logits to log p_data / p_G (DRS's way)
  config.num_real = 10_000     # training images compared (a fixed random subset; 0: all)
  config.heldout_source = ""   # held-out real images ('': the data source's test split if any)
  config.num_heldout = 5_000   # held-out images used (0: all)
  config.batch_size = 100      # images per feature-network call
  config.best = ""             # keep the checkpoint with the best value of this metric
                               # (one of config.eval.metrics; needs eval.every > 0)
  config.inception_path = ""   # pt_inception-2015-12-05-6726825d.pth ('': $GAN_JAX_INCEPTION,
                               # then the cache, then a download)
  config.classifier_path = ""  # anime tag classifier ('': the one committed in gan_jax/metrics)
  config.kid_subsets = 100     # KID: random subsets averaged
  config.kid_subset_size = 1000  # KID: images per subset (capped by the set sizes)
  config.is_splits = 10        # Inception score: splits for its mean and std
  config.pr_k = 3              # precision/recall: k of the k-NN radii
  config.dc_k = 5              # density/coverage: k of the k-NN radii
  config.afd_num = 1000        # afd: samples shown to the detector (~10 ms each; 0: all)
  config.duplicate_threshold = 0.1  # RMS grayscale distance of a near-duplicate pair
  return config


def augment() -> ml_collections.ConfigDict:
  """config.augment: differentiable augmentation of every image D sees (DiffAugment,
  gan_jax/augment.py), against D overfitting a small data set; off by default."""
  config = ml_collections.ConfigDict()
  # Comma-separated, applied in the order given, of: color, translation, cutout, flip (a
  # left-right mirror with probability 1/2), ada_geometric, ada_color, or 'ada' for both of
  # those (StyleGAN2-ADA's pipeline: gan_jax/ada_pipeline.py) ('' for none); DiffAugment's
  # recommendation is color,translation,cutout.
  config.policy = ""
  # Probability each augmentation is applied to each sample (1: DiffAugment; 0: off); ADA's
  # two apply it to each of their transformations.
  config.p = 1.0
  # Where the penalties (R1, WGAN-GP, ...) take D's input gradient: 'augmented' (w.r.t. the
  # augmented images D saw) | 'through' (w.r.t. the raw images, back through the
  # augmentation, as StyleGAN2-ADA's R1). Same penalty inputs either way (gan_jax/step.py).
  config.penalty_grad = "augmented"
  # StyleGAN2-ADA's adaptive p: > 0 moves p (starting from `p` above; ADA starts at 0) after
  # every iteration so that r = E[sign D(augmented real)] approaches this target (the paper
  # uses 0.6); 0: p stays fixed. The logs show augment_p and ada_r.
  config.ada_target = 0.0
  config.ada_kimg = 500.0  # ADA: thousands of real images over which p can move by 1
  # >= 0: p annealed from `p` above to this along optim.schedule's decay (linear or cosine;
  # R3GAN's 0 -> 0.3); -1: p throughout. The logs show augment_p.
  config.p_final = -1.0
  return config
