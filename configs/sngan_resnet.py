"""SNGAN (Miyato et al., 2018) with its ResNet generator and discriminator on the anime faces.

  python launch.py --config=configs/sngan_resnet.py --workdir=workdirs/sngan_resnet

The paper's ResNet recipe: G and D are gan_jax/models/resnet.py (at 64x64 and
width 64, SNGAN's 64x64 ResNet: 11,761,923 G parameters with z of 100 and
10,141,441 D parameters), every D layer is spectrally normalised inside the
layer (W / sigma(W), gradient through sigma, one power iteration per training
call), no BatchNorm in D, hinge loss, Adam 2e-4 with betas (0.0, 0.9) and 5
discriminator updates per generator update (n_dis = 5). No optimizer-side
constraint (configs/sngan.py projects the DCGAN's kernels instead). z keeps
dcgan.py's 100 dimensions (the paper used 128: --config.model.latent_dim=128).

What to expect: each iteration is 5 D updates and 1 G update of networks
several times DCGAN-64's size, so an iteration costs many DCGAN iterations.
Measured on one H100 (benchmarks/architectures.md, faces64-000.zip, fp32):
1,479 images/s (11.6 iterations/s); after 3 minutes of training (2,080
iterations) the EMA samples score FD-anime 0.62, AFD 0.92, 1.1% near-duplicates
(real faces: 1.6% at the same sample size) and 0.91x the diversity of real
faces, beating DCGAN (configs/dcgan.py, collapsed by then) and StyleGAN2
(configs/stylegan2.py) on every metric, so configs/anime.py is this recipe.
The largest singular value of every D kernel (diag/*) should stay ~1
throughout; with the hinge loss neither loss converges to a fixed value, so
judge progress by the samples and eval/fd_anime. The 'smoke' preset is
dcgan.py's tiny one with 8x8 images and 2 D updates per iteration, for tests.
"""

from configs import dcgan
from configs import common


def get_config(preset: str = ""):
  """dcgan.py with SNGAN's ResNet recipe; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.model.name = "resnet"
  config.model.d_norm = "none"           # unused by the ResNet family (D has no BatchNorm)
  config.model.d_spectral_norm = True    # W / sigma(W) in every D layer
  config.model.g_spectral_norm = False
  config.loss.name = "hinge"
  config.constraint = common.constraint()  # none: spectral norm lives in the layers
  config.optim = common.optim(lr=2e-4, betas=(0.0, 0.9))
  config.train.d_steps = 5               # SNGAN's n_dis
  if preset == "smoke":  # smaller still: the 5 D updates are unrolled in one compiled step
    config.data.image_size = 8
    config.train.d_steps = 2
  return config
