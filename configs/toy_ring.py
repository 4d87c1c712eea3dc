"""The toy lab: a GAN on 8 Gaussians in a ring (2-D), in seconds on a CPU.

  python launch.py --config=configs/toy_ring.py --workdir=workdirs/toy_ring

Swap any piece with one flag and watch what the lectures describe, e.g.
  --config.loss.name=minimax                       (the saturating original)
  --config.loss.name=wasserstein --config.penalty.use=wgan_gp
  --config.loss.name=wasserstein --config.constraint.d=weight_clip
  --config.model.d_spectral_norm=True              (SN layers in D)
Every `sample.every` iterations the workdir gets samples/step_*.png (generated
points in blue over the data in grey, mode centres in red) and metrics.jsonl
gets toy/modes_covered and toy/high_quality (PacGAN's protocol over
`sample.num` = 2,500 samples: gan_jax/data/toy.py). The D diagnostics
(Lipschitz, gradient norms, W estimate) are logged every `log.every`.

What to expect with these settings: all 8 modes covered within ~2k
iterations for the non-saturating loss with R1, spectral norm or a gradient
penalty (benchmarks/toy_lab.md has the measured rates over seeds).
"""

import ml_collections

from configs import common


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  """The ring-of-8 toy config; `preset` is '' or 'smoke' (a few iterations, for tests)."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # everything random derives from this: init, batches, z

  config.data = ml_collections.ConfigDict()
  config.data.source = "toy:ring8"  # toy:ring8 | toy:grid25 (gan_jax/data/toy.py)

  config.model = ml_collections.ConfigDict()
  config.model.name = "mlp"              # fully connected G and D (gan_jax/models/mlp.py)
  config.model.g_width = 128             # generator hidden units per layer
  config.model.d_width = 128             # discriminator hidden units per layer
  config.model.g_depth = 3               # generator hidden layers (0: an affine map of z)
  config.model.d_depth = 3               # discriminator hidden layers
  config.model.d_spectral_norm = False   # reparameterise D's layers as W / sigma(W) (SNGAN layer)
  config.model.g_spectral_norm = False   # the same for G's layers
  config.model.latent_dim = 16           # size of z
  config.model.latent_dist = "gaussian"  # p(z): gaussian | uniform
  config.model.dtype = "float32"         # compute dtype in training: float32 | bfloat16

  config.loss = common.loss("non_saturating")  # any loss: configs/common.py lists them
  config.constraint = common.constraint()      # '' | weight_clip | spectral_norm_projection
  config.penalty = common.penalty()            # wgan_gp, dragan, r1, r2 in any combination
  config.optim = common.optim(lr=1e-3, betas=(0.0, 0.9))  # measured on the ring: benchmarks/toy_lab.md

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 256  # global batch (split over all devices)
  config.train.num_steps = 5000  # iterations; each = d_steps D updates + 1 G update
  config.train.d_steps = 1       # discriminator updates per generator update
  config.train.d_loop = "unroll"  # how the D updates compile: unroll (a Python loop; fastest
                                 # on the CPU) | scan (one lax.scan: one D update compiled)
  config.train.d_passes = "separate"  # D's loss on reals and fakes: separate (two D calls) |
                                 # fused (one call on both, batch statistics per half)
  config.train.lazy_branching = "auto"  # lazy regularisers' off-iterations: cond (skipped) |
                                 # select (computed and dropped: faster on XLA's CPU backend) |
                                 # auto (select on the CPU, cond elsewhere)
  config.train.microbatches = 1  # m > 1: each update's gradient is the mean over m micro-
                                 # batches of batch_size / m, computed one after another
                                 # (gradient accumulation: less activation memory; batch
                                 # statistics per micro-batch)
  config.train.max_minutes = 0.0  # also stop (and save) after this much time in the loop (0: off)
  config.train.iterations_per_call = 1  # K > 1: K iterations per device call (one lax.scan)
                                 # where nothing is due inside. The same run to float
                                 # rounding; no faster on a CPU (benchmarks/README.md)

  config.ema = common.ema(decay=0.99)  # samples from a G-EMA: far more reliable mode coverage
  config.log = common.log(every=500)

  config.sample = ml_collections.ConfigDict()
  config.sample.every = 1000  # scatter plot + mode metrics every N iterations
  config.sample.num = 2500    # generated points plotted and scored (PacGAN's 2,500)

  config.checkpoint = common.checkpoint(every=5000)
  # Image metrics do not apply to points: samples above report toy/modes_covered instead.
  config.eval = common.evaluation(every=0)

  if preset == "smoke":
    config.train.num_steps = 20
    config.train.batch_size = 64
    config.log.every = 10
    config.sample.every = 10
    config.checkpoint.every = 10
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for configs/toy_ring.py; choose from: smoke")
  return config
