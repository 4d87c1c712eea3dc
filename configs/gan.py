"""The original GAN (Goodfellow et al., 2014) on the anime faces, in its min-max form.

  python launch.py --config=configs/gan.py --workdir=workdirs/gan
  python launch.py --config=configs/gan.py --workdir=workdirs/gan_ns --config.loss.name=non_saturating

G minimises log(1 - D(G(z))), the form whose gradient vanishes when D is
confident (the lecture's point); the second command is the lecture's
non-saturating algorithm (= configs/anime.py).
"""

from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with the minimax loss; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.loss.name = "minimax"
  return config
