"""WGAN-GP (Gulrajani et al., 2017) on the anime faces: a gradient penalty instead of clipping.

  python launch.py --config=configs/wgan_gp.py --workdir=workdirs/wgan_gp

The paper's recipe: Wasserstein loss + lambda = 10 penalty on
(||grad D(x^)|| - 1)^2 at random interpolates, Adam 1e-4 with betas (0, 0.9),
5 critic updates per generator update, and no BatchNorm in the critic
(LayerNorm instead, so the penalty stays per-sample).
"""

from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with the WGAN-GP recipe; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.loss.name = "wasserstein"
  config.penalty.use = "wgan_gp"
  config.penalty.wgan_gp.weight = 10.0
  config.model.d_norm = "layer"
  config.optim.g_lr = config.optim.d_lr = 1e-4
  config.optim.g_betas = config.optim.d_betas = (0.0, 0.9)
  config.train.d_steps = 5
  return config
