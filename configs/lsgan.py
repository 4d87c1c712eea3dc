"""LSGAN (Mao et al., 2017) on the anime faces: D regresses real to 1 and fake to 0.

  python launch.py --config=configs/lsgan.py --workdir=workdirs/lsgan

Least-squares loss with the paper's 0-1 coding (a, b, c) = (0, 1, 1), set in
config.loss.least_squares; everything else as DCGAN (configs/anime.py).
"""

from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with the LSGAN loss; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.loss.name = "least_squares"
  return config
