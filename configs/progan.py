"""Progressive GAN (Karras et al., 2018) on the anime faces: G and D grow from 4x4 to 64x64.

  python launch.py --config=configs/progan.py --workdir=workdirs/progan

Both networks start at 4x4 and add a resolution at a time (gan_jax/models/progan.py):
each new one fades in linearly over model.growth.fade_iters iterations, then trains at
that resolution for model.growth.stable_iters. Data and samples stay 64x64 throughout
(G's image is upsampled, D pools its input), so sample grids show the blocky early
stages, and the level is a function of the iteration count, so a resumed run grows
exactly like an uninterrupted one. Logs show growth_level (k.f: resolution 4 * 2^k
with the next one f of the way faded in).

The paper's recipe: WGAN-GP (lambda 10, one critic update per G update) plus its drift
term 0.001 E[D(x)^2]; pixel norm in G; minibatch standard deviation in D; equalised
learning rate; Adam 1e-3 with betas (0, 0.99); G-EMA 0.999; z of 512. The paper fades
and stabilises over 800k images per resolution with a batch size that shrinks as the
resolution grows; here one batch of 64 throughout and 4,000 iterations (256k images)
per phase: 64x64 is fully in from iteration 32,000. What to expect: not measured on
the anime faces yet.
"""

import ml_collections

from configs import common
from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with ProGAN's model, growth schedule, loss and optimizer; `preset` as in
  dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.model.name = "progan"
  config.model.max_channels = 512  # channel cap at low resolutions (width doubles per halving)
  config.model.mbstd_group = 4     # minibatch-stddev group size in D
  config.model.branching = "auto"  # how the level's resolution is picked: switch (only its
                                   # layers run) | select (all run, its output is kept; XLA's
                                   # CPU backend runs convs in a switch 10-70x slower) | auto:
                                   # select on the CPU, switch elsewhere (models/progan.py)
  config.model.d_norm = "none"     # unused by ProGAN (no normalisation layers)
  config.model.latent_dim = 512
  config.model.growth = ml_collections.ConfigDict(dict(
      stable_iters=4000,  # iterations at each whole resolution (4x4 included)
      fade_iters=4000))   # iterations over which each next resolution fades in
  config.loss = common.loss("wasserstein")
  config.penalty.use = "wgan_gp,drift"
  config.penalty.wgan_gp.weight = 10.0
  config.penalty.drift.weight = 0.001
  config.optim = common.optim(lr=1e-3, betas=(0.0, 0.99))
  config.train.batch_size = 64
  if preset == "smoke":
    config.data.image_size = 8  # two levels: 4x4 and 8x8
    config.model.latent_dim = 16
    config.model.max_channels = 16
    config.model.growth.stable_iters = 1
    config.model.growth.fade_iters = 2
    config.train.num_steps = 5  # level 0 at iterations 0-1, fading at 2, 8x8 from 3
  return config
