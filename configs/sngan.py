"""SNGAN-style training (Miyato et al., 2018) on the anime faces: hinge loss + spectral norm.

  python launch.py --config=configs/sngan.py --workdir=workdirs/sngan

Every discriminator kernel is projected to largest singular value <= 1 after
each update (gan_jax.constraints.spectral_norm_projection; the kernel read as a
(fan-in, outputs) matrix, as in SNGAN), no BatchNorm in D, hinge loss, Adam 2e-4
with betas (0.5, 0.999) and one D update per G update (the paper's standard-CNN
setting). The lecture: spectral normalisation is "needed for a really good GAN".
The SNGAN paper's own form, W / sigma(W) inside the layer with the gradient
flowing through sigma, is one override away:
  --config.constraint.d= --config.model.d_spectral_norm=True
"""

from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with the SNGAN recipe; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.loss.name = "hinge"
  config.constraint.d = "spectral_norm_projection"
  config.model.d_norm = "none"
  return config
