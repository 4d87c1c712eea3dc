"""StyleGAN2 (Karras et al., 2020) on the anime faces: gan_jax/models/stylegan2.py.

  python launch.py --config=configs/stylegan2.py --workdir=workdirs/stylegan2

Mapping network (8 layers, lr x0.01) -> styles; modulated/demodulated convs
with noise inputs and a skip generator; residual discriminator with
minibatch-stddev; equalised learning rate everywhere. The paper's recipe:
non-saturating loss, lazy R1 (every 16 iterations, scaled by 16), Adam with
betas (0, 0.99), G-EMA. DiffAugment for small data is one override away:
  --config.augment.policy=color,translation,cutout
Not measured yet against DCGAN on a GPU (issue 6): no session so far had one.
"""

from configs import common, dcgan


def get_config(preset: str = ""):
  """dcgan.py with StyleGAN2's architecture and recipe; `preset` as in dcgan.py."""
  config = dcgan.get_config(preset)
  config.model.name = "stylegan2"
  config.model.mapping_layers = 8  # MLP layers from z to w
  config.model.w_dim = 0           # size of w (0: latent_dim)
  config.model.max_channels = 512  # channel cap at low resolutions
  config.model.mbstd_group = 4     # minibatch-stddev group size in D
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
  return config
