"""Conditional anime faces: choose the hair colour and eye colour (cGAN with projection).

  python launch.py --config=configs/anime_tags.py --workdir=workdirs/anime_tags
  python -m gan_jax.sample_tags --workdir=workdirs/anime_tags --tags="blue hair red eyes" \
      --num=64 --out=blue_red.png

The SNGAN-ResNet recipe of configs/sngan_resnet.py (hinge loss, spectral norm
in every D layer, Adam 2e-4 (0, 0.9), 5 D updates per G update) made
class-conditional on two labels per face, its hair colour and its eye colour
(13 classes each, gan_jax/data/labels.py): G concatenates a learned embedding
of each label to z, and D is a projection discriminator (Miyato & Koyama,
2018): logit = psi(phi(x)) + <E_hair[y_hair] + E_eye[y_eye], phi(x)>, the
embeddings spectrally normalised with the rest of D. `model.d_cond=acgan` (or
`projection+acgan`) with `loss.ac_weight` > 0 trains an AC-GAN classifier head
instead (or as well).

Data: only faces whose tags name exactly one hair colour and exactly one eye
colour are used (11,567 of the 18,119 tagged faces; ids 0..33430, so the first
three zips); the pipeline's summary line counts what was dropped. Tags come
from tfds:anime_faces's features when that dataset is prepared, else from the
tags.csv beside the zips (`data.tags_path` names another). For a single zip:

  --config.data.source=zip:carry/faces64-000.zip --config.data.tags_path=carry/tags.csv

Evaluation adds `tag_hit_rate`: how often the offline tag classifier sees the
requested colours in samples, next to the same rate on held-out real faces with
those tags (the classifier's ceiling: ~0.68 hair, ~0.54 eyes). This recipe has
not been trained to completion in this project yet. The 'smoke' preset is
sngan_resnet.py's tiny one (8x8) with 1 D update per iteration, for the tests.
"""

from configs import sngan_resnet


def get_config(preset: str = ""):
  """sngan_resnet.py made conditional on hair and eye colour; `preset` '' or 'smoke'."""
  config = on_hair_and_eyes(sngan_resnet.get_config(preset))
  if preset == "smoke":  # one D update per iteration: half the unrolled step to compile
    config.train.d_steps = 1
    config.model.label_embed_dim = 4
  return config


def on_hair_and_eyes(config):
  """`config` conditioned on the faces' hair and eye colours: the label and conditioning
  fields the tag-conditional recipes share (this one, configs/stylegan2_tags.py)."""
  config.data.labels = "anime_hair_eyes"  # '' (unconditional) | anime_hair_eyes: (hair, eye)
                                         # colour | class: the dataset's own classes (a TFDS
                                         # class label, or one folder per class)
  config.data.tags_path = ""      # tags.csv (id,tags) for zip/folder sources ('': beside the data)
  config.model.label_embed_dim = 32  # G: learned embedding size of each label, concatenated to z
  config.model.g_cond = "concat"  # G: concat (label embeddings to z) | cbn (conditional
                                  # BatchNorm in every up-block, the projection paper's G)
  config.model.d_cond = "projection"  # D: projection | acgan | projection+acgan
  config.loss.ac_weight = 0.0     # AC-GAN cross-entropy weight for D and G (> 0 with an acgan D)
  # The offline metrics plus the conditional hit rate; best checkpoint still by FD-anime.
  config.eval.metrics = "fd_anime,kid_anime,tags,tag_hit_rate"
  return config
