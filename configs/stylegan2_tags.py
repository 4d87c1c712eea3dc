"""StyleGAN2 conditional on hair and eye colour (StyleGAN2-ADA's conditioning).

  python launch.py --config=configs/stylegan2_tags.py --workdir=workdirs/stylegan2_tags
  python -m gan_jax.sample_tags --workdir=workdirs/stylegan2_tags --tags="blue hair red eyes" \
      --num=64 --out=blue_red.png

configs/stylegan2.py's recipe on configs/anime_tags.py's labels (one hair colour and
one eye colour per face, 11,567 faces): G's mapping network reads z and the sum of
the two labels' learned embeddings, each normalised by its RMS, concatenated; D adds
a projection term <E_hair[y_hair] + E_eye[y_eye], phi(x)> on its last hidden
features (gan_jax/models/stylegan2.py). Style mixing and path-length
regularisation map both latents with each sample's own labels; the truncation
trick pulls towards one average w over all labels, or with
`eval.truncation_center=label` (`--truncation_center=label`) towards each sample's
label's own average w, which keeps the colours (benchmarks/README.md). `model.d_cond=acgan` (with
`loss.ac_weight` > 0) trains an AC-GAN head instead, as in anime_tags.py. This
recipe has not been trained to completion in this project yet. The 'smoke'
preset is stylegan2.py's tiny one (8x8).
"""

from configs import anime_tags, stylegan2


def get_config(preset: str = ""):
  """stylegan2.py made conditional on hair and eye colour; `preset` '' or 'smoke'."""
  config = anime_tags.on_hair_and_eyes(stylegan2.get_config(preset))
  del config.model.g_cond            # G is conditioned one way: through the mapping network
  config.model.label_embed_dim = 0   # size of each label's embedding in the mapping network
                                     # (0: w_dim, as StyleGAN2-ADA)
  return config
