"""WGAN (Arjovsky et al., 2017) on the anime faces: a critic kept Lipschitz by weight clipping.

  python launch.py --config=configs/wgan.py --workdir=workdirs/wgan

The paper's recipe: Wasserstein loss, every critic weight clipped to
[-0.01, 0.01] after each update, RMSProp at 5e-5, 5 critic updates per
generator update. Expect slow but steady progress and a critic loss
(-W estimate) that shrinks in magnitude as samples improve; clipping is crude
(the lecture's point), see configs/wgan_gp.py and configs/sngan.py.
"""

from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with the WGAN recipe; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.loss.name = "wasserstein"
  config.constraint.d = "weight_clip"            # critic only
  config.constraint.pattern = r".*"              # every parameter, as in the paper
  config.constraint.weight_clip.clip = 0.01
  config.optim.name = "rmsprop"
  config.optim.g_lr = config.optim.d_lr = 5e-5
  config.train.d_steps = 5
  return config
