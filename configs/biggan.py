"""BigGAN (Brock et al., 2019) on the anime faces, conditional on hair and eye colour.

  python launch.py --config=configs/biggan.py --workdir=workdirs/biggan
  python -m gan_jax.evaluate --workdir=workdirs/biggan --truncation=1.0   # truncation trick

BigGAN is the SNGAN ResNet (configs/sngan_resnet.py) scaled up with a few
additions, each a field below (gan_jax/models/biggan.py): self-attention (SAGAN)
in G and D, hierarchical z (one chunk of z per G block), a shared class
embedding feeding every block's conditional BatchNorm, spectral norm in G too,
orthogonal initialisation and orthogonal regularisation of G's kernels
(gan_jax/regularisers.py), and the truncation trick when sampling
(config.eval.truncation, or evaluate's --truncation). The paper's optimisation:
hinge loss, Adam with betas (0, 0.999), D lr 4e-4 and G lr 1e-4, 2 D updates
per G update, G-EMA 0.9999; its batch of 256 x 8 accumulations is out of reach
of one GPU, so the batch is dcgan.py's 128.

The classes are anime_tags.py's: one hair colour and one eye colour per face
(11,567 faces; the shared embedding concatenates one vector per label). For an
unconditional BigGAN on all faces (BatchNorms conditioned on the z chunks alone):
  --config.data.labels='' --config.eval.metrics=fd_anime,kid_anime,tags,duplicates

At 64x64, width 64 and z of 120 (5 chunks of 24): attention at 32x32, in G and
D (BigGAN's 64x64 code attends at 64 in G only, which costs a 4096 x 1024
attention matrix per image; --config.model.attention=64 does that). What to expect: at 64x64 not
measured yet (benchmarks/gpu_pending.sh item 9). Scaled to 32x32 and widths 32
on a 2-core CPU (benchmarks/README.md), 2,500 iterations (~18 minutes) reached
FD-anime 0.63 against 0.89 for anime_tags.py at the same cost, with both
requested colours in 36% of samples (26%); truncation at 0.5 raised that to 47%
with 2% duplicates. The 'smoke' preset is a tiny 8x8 model with attention in G,
for the tests.
"""

from configs import anime_tags
from configs import common


def get_config(preset: str = ""):
  """anime_tags.py with BigGAN's model, regularisation and optimisation; `preset` '' or
  'smoke'."""
  config = anime_tags.get_config(preset)
  config.model.name = "biggan"
  config.model.latent_dim = 120          # z; with hierarchical z a multiple of (G blocks + 1)
  config.model.attention = 32            # self-attention after the G block and the D block
                                         # whose output has this side (0: none)
  config.model.hierarchical_z = True     # one z chunk for the 4x4 input and one per G block
  config.model.shared_dim = 128          # conditional: shared class embedding size per label
  config.model.g_spectral_norm = True    # W / sigma(W) in every G layer too
  config.model.d_spectral_norm = True
  config.model.d_cond = "projection"     # D: projection | acgan | projection+acgan
  config.model.d_init = "orthogonal"     # D's blocks and embeddings start orthogonal (BigGAN) |
                                         # resnet (as the SNGAN ResNet's D)
  del config.model.g_cond                # the shared embedding conditions G (biggan.py)
  del config.model.label_embed_dim
  config.loss.name = "hinge"
  config.optim = common.optim(betas=(0.0, 0.999))
  config.optim.g_lr = 1e-4
  config.optim.d_lr = 4e-4
  config.optim.g_orthogonal_reg = 1e-4   # BigGAN's orthogonal regularisation of G's kernels
  config.train.d_steps = 2
  config.ema = common.ema(decay=0.9999)
  if preset == "smoke":
    config.data.image_size = 8           # (anime_tags.py's smoke size)
    config.model.latent_dim = 16         # 2 chunks of 8 at 8x8
    config.model.attention = 8           # in G; tests/test_biggan.py covers D's
    config.model.shared_dim = 4
    config.train.d_steps = 1
  return config
