"""DRAGAN (Kodali et al., 2017) on the anime faces: a gradient penalty around the real data.

  python launch.py --config=configs/dragan.py --workdir=workdirs/dragan

The paper's penalty on DCGAN: the non-saturating loss plus lambda = 10 times
(||grad D(x^)|| - 1)^2 at x^ = x + alpha * c * std(x) * u (u, alpha uniform in [0, 1],
c = 0.5; penalties.dragan). D's gradient is held near norm 1 only around the real data,
where the paper ties mode collapse to sharp gradients of D. D's BatchNorm becomes
LayerNorm, as in wgan_gp.py, so that each sample's penalty depends on that sample alone
(our choice); the optimizer and everything else as DCGAN (configs/dcgan.py).
"""

from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with the DRAGAN penalty; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.loss.name = "non_saturating"
  config.penalty.use = "dragan"
  config.penalty.dragan.weight = 10.0
  config.penalty.dragan.c = 0.5
  config.model.d_norm = "layer"
  return config
