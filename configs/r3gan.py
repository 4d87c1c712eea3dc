"""R3GAN (Huang et al., 2024, "The GAN is dead; long live the GAN! A modern GAN baseline") on
the anime faces: gan_jax/models/r3gan.py.

  python launch.py --config=configs/r3gan.py --workdir=workdirs/r3gan

The paper's point is that a well-behaved loss makes the old tricks unnecessary: the
relativistic pairing loss (RpGAN: each real judged against a fake, loss.name=relativistic)
with zero-centred gradient penalties on the reals and the fakes (R1 + R2, each
gamma / 2 E||grad_x D||^2) trains a plain ResNet without normalisation, minibatch-stddev,
equalised learning rate, style mapping or path-length regularisation. Its networks are
ResNets of grouped inverted-bottleneck blocks; this config follows its FFHQ-64 preset
(FFHQ: 70k faces, like the 64k anime faces): widths 768 down to 384 at 64x64, two blocks a
stage, z of 64, Adam with betas (0, 0.9), and its annealing: over the first 20M images
(312,500 iterations at batch 64) one half cosine takes the rate from 2e-4 to 5e-5, gamma
from 2 to 0.2 and Adam's beta2 from 0.9 to 0.99, which then stay there.

Along the same cosine the generator EMA's half-life rises from 0 (no averaging) to 500k
images, and the probability of augmenting D's inputs from 0 to 0.3 (StyleGAN2-ADA's
pipeline, augment.policy 'ada': gan_jax/ada_pipeline.py, and a cutout, as R3GAN's
trainer), R1 and R2 taking their gradients through the augmentation
(augment.penalty_grad=through, as its trainer). Not reproduced: ADA's warp of a
2x-supersampled image through a low-pass filter (ours is bilinear at the image's
resolution); the cutout is DiffAugment's (its square always inside the image). Batch 64
(the paper's FFHQ batch is 256); a run at another batch should scale
optim.decay_iterations to keep the 20M images.

What to expect: not measured at this size yet (benchmarks/gpu_pending.sh item 17). On a
2-core CPU (benchmarks/README.md, "R3GAN") a width-8 R3GAN at 32x32 is still blobs after
1,500 iterations (FD-anime 12.7 with the rate decayed over those 1,500 iterations, 9.75
with it constant; DCGAN 3.22; those runs predate the annealing of the EMA and the
augmentation). The 'smoke' preset is a tiny 8x8 model for the tests, its annealing over
the run's own iterations, with one augmentation.
"""

from configs import common, dcgan


def get_config(preset: str = ""):
  """dcgan.py with R3GAN's networks and recipe; `preset` '' or 'smoke'."""
  config = dcgan.get_config(preset)
  config.model.name = "r3gan"
  config.model.g_width = 384             # channels at the image's side (G's last stage, D's
  config.model.d_width = 384             # first); twice that a stage down, up to max_channels
  config.model.max_channels = 768        # channel cap at the low resolutions
  config.model.blocks_per_stage = 2      # residual blocks at each resolution, in G and in D
  config.model.expansion = 2             # a block's 1x1 conv widens to this times its channels
  config.model.group_width = 16          # channels per group of a block's grouped 3x3 conv
  config.model.grouped_conv = "auto"     # how the grouped convs compute: lax | taps (per-tap
                                         # matrix products: 10-50x faster gradients on a CPU) |
                                         # auto (taps on the CPU, lax elsewhere)
  config.model.latent_dim = 64
  for dcgan_only in ("d_norm", "g_spectral_norm", "upconv", "downconv"):
    del config.model[dcgan_only]         # DCGAN's layer options: R3GAN has no such layers
  config.loss.name = "relativistic"      # RpGAN
  config.penalty.use = "r1,r2"
  config.penalty.r1.weight = 2.0         # gamma (each penalty is gamma / 2 E||grad_x D||^2)
  config.penalty.r2.weight = 2.0
  config.penalty.r1.weight_final = 0.2   # annealed with the rate (below)
  config.penalty.r2.weight_final = 0.2
  config.optim = common.optim(lr=2e-4, betas=(0.0, 0.9))
  config.optim.schedule = "cosine"       # half a cosine from 1 to decay_final x the rate
  config.optim.decay_iterations = 312_500  # 20M images at batch 64, then held at the end
  config.optim.decay_final = 0.25
  config.optim.beta2_final = 0.99        # Adam's beta2 annealed along the same cosine
  config.train.batch_size = 64
  config.ema.half_life_images = 0.0      # the EMA's half-life, annealed 0 -> 500k images
  config.ema.half_life_final = 500_000.0
  config.ema.rampup = False              # (the half-life's own ramp replaces it)
  config.augment.policy = "ada,cutout"   # StyleGAN2-ADA's geometric and colour pipeline
  config.augment.p = 0.0                 # each transformation's probability, annealed 0 -> 0.3
  config.augment.p_final = 0.3
  config.augment.penalty_grad = "through"  # R1/R2 w.r.t. the raw images, through the policy
  if preset == "smoke":
    config.data.image_size = 8
    config.model.g_width = config.model.d_width = 4
    config.model.max_channels = 8
    config.model.group_width = 4
    config.model.blocks_per_stage = 1
    config.model.latent_dim = 16
    config.optim.decay_iterations = 0    # anneal over the run's own iterations
    config.augment.policy = "translation"  # one cheap augmentation, for a quick compile
  return config
