"""The anime-face recipe: the best one we measured (SNGAN-ResNet; configs/sngan_resnet.py).

  python launch.py --config=configs/anime.py --workdir=workdirs/anime

Run the same command again to resume. Override any field from the command line
(`--config.loss.name=hinge --config.optim.d_lr=4e-4`, `--config.model.dtype=bfloat16`),
or copy a recipe file and change one line.

Why this recipe: benchmarks/architectures.md trained DCGAN (configs/dcgan.py),
SNGAN-ResNet and StyleGAN2 (configs/stylegan2.py) side by side on one H100, the
same 14,250 faces and the same 3 minutes of training each. SNGAN-ResNet's EMA
samples scored FD-anime 0.62, AFD 0.92, 1.1% near-duplicates and 0.91x real
diversity; DCGAN had collapsed (100% near-duplicates, 0.07x diversity) and
StyleGAN2 was at 28% near-duplicates and 0.62x diversity. One seed and one short
budget: the ranking of longer runs is not measured yet.

Presets: `configs/anime.py:smoke` (SNGAN-ResNet's tiny 8x8 variant, for tests).
The anime-face constants (where the faces are, the default data source) live in
configs/dcgan.py, the base every anime recipe starts from, and are re-exported
here.
"""

from configs import sngan_resnet
from configs.dcgan import ANIME_FACES, ANIME_FACES_DIR, default_source

__all__ = ["ANIME_FACES", "ANIME_FACES_DIR", "default_source", "get_config"]


def get_config(preset: str = ""):
  """The anime recipe (SNGAN-ResNet); `preset` is '' (the full run) or 'smoke'."""
  return sngan_resnet.get_config(preset)
