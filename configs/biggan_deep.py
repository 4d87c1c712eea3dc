"""BigGAN-deep (Brock et al., 2019, appendix B) on the anime faces, conditional on hair and eyes.

  python launch.py --config=configs/biggan_deep.py --workdir=workdirs/biggan_deep
  python -m gan_jax.evaluate --workdir=workdirs/biggan_deep --truncation=1.0

configs/biggan.py with BigGAN-deep's networks (gan_jax/models/biggan_deep.py): two
bottleneck residual blocks per resolution in G and in D instead of one plain one, skip
connections that drop (G) or add (D) channels instead of a 1x1 conv, and all of z, with
the class embeddings, fed to every G block (no hierarchical z). Everything else is
BigGAN's recipe: hinge loss, Adam (0, 0.999) at G 1e-4 / D 4e-4, 2 D updates per G
update, orthogonal initialisation and regularisation, G-EMA 0.9999, the truncation trick.
The paper's z has 128 dimensions; BigGAN-deep's G and D at 128x128 use width 128, twice
BigGAN's, because each bottleneck block works at a quarter of its width. At 64x64 this
keeps biggan.py's width 64 (16w at 4x4, 2 blocks a level: 8 G blocks, 8 D blocks).

What to expect: not measured on the faces yet. The 'smoke' preset is a tiny 8x8 model
with attention in G and D, for the tests.
"""

from configs import biggan


def get_config(preset: str = ""):
  """biggan.py with BigGAN-deep's networks; `preset` '' or 'smoke'."""
  config = biggan.get_config(preset)
  config.model.name = "biggan_deep"
  config.model.latent_dim = 128          # z, all of it fed (with the class embeddings) to
                                         # G's first layer and every block's BatchNorms
  del config.model.hierarchical_z        # BigGAN's only: BigGAN-deep never splits z
  del config.model.d_init                # BigGAN-deep's D starts orthogonal throughout
  if preset == "smoke":
    config.model.latent_dim = 16
    config.model.attention = 8           # after G's up-block to 8x8; D has no 8x8 blocks
  return config
