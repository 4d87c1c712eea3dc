"""StyleGAN2 (Karras et al., 2020) on the anime faces: gan_jax/models/stylegan2.py.

  python launch.py --config=configs/stylegan2.py --workdir=workdirs/stylegan2

Mapping network (8 layers, lr x0.01) -> styles; modulated/demodulated convs
with noise inputs and a skip generator; residual discriminator with
minibatch-stddev; equalised learning rate everywhere. The paper's recipe:
non-saturating loss, lazy R1 (every 16 iterations, scaled by 16), Adam with
betas (0, 0.99), G-EMA, random noise inputs, style mixing regularisation (0.9)
and lazy path-length regularisation (weight 2, every 4); G tracks the average w
for the truncation trick (gan_jax/sampling.py's generate(truncation_psi=...)).
DiffAugment for small data is one override away:
  --config.augment.policy=color,translation,cutout
Measured against DCGAN and SNGAN-ResNet on one H100 (benchmarks/architectures.md,
3 minutes each, before style mixing, fresh noise and path-length regularisation
were added): 1,540 images/s; FD-anime 1.07, AFD 0.93, but 28% near-duplicates
and 0.62x real diversity, behind SNGAN-ResNet (configs/anime.py).
"""

import ml_collections

from configs import common, dcgan


def get_config(preset: str = ""):
  """dcgan.py with StyleGAN2's architecture and recipe; `preset` as in dcgan.py."""
  config = dcgan.get_config(preset)
  config.model.name = "stylegan2"
  config.model.mapping_layers = 8  # MLP layers from z to w
  config.model.w_dim = 0           # size of w (0: latent_dim)
  config.model.max_channels = 512  # channel cap at low resolutions
  config.model.mbstd_group = 4     # minibatch-stddev group size in D
  config.model.noise = "random"    # G's noise inputs in training: random (fresh per sample and
                                   # layer, StyleGAN2's) | const (one fixed image per layer);
                                   # samples and evaluation always use the fixed images
  config.model.style_mixing = 0.9  # probability per sample of mixing two latents at a random
                                   # layer in training (mixing regularisation; 0: off)
  config.model.w_avg_decay = 0.995  # EMA decay of the tracked average w (truncation trick)
  config.g_penalty = ml_collections.ConfigDict()  # generator-side regularisers (step.py)
  config.g_penalty.path_length = ml_collections.ConfigDict(dict(
      weight=2.0,       # path-length regularisation weight (0: off)
      every=4,          # lazy: every N iterations, scaled by N
      decay=0.01,       # of the running mean of path lengths
      batch_shrink=2))  # computed on batch_size // batch_shrink latents
  config.loss.name = "non_saturating"
  config.penalty.use = "r1"
  config.penalty.r1.weight = 0.1   # gamma: small images want a small gamma (FFHQ-1024 uses 10)
  config.penalty.r1.every = 16     # lazy regularisation
  config.optim = common.optim(lr=2.5e-3, betas=(0.0, 0.99))
  config.train.batch_size = 32
  if preset == "smoke":
    config.data.image_size = 8
    config.model.g_width = config.model.d_width = 4
    config.model.mapping_layers = 2
    config.train.batch_size = 16
    # Its double backward pass doubles the step's compile time; tests/test_stylegan2.py
    # and tests/test_precision.py train with it.
    config.g_penalty.path_length.weight = 0.0
  return config
