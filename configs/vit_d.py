"""DCGAN's generator against a vision-transformer discriminator on the anime faces.

  python launch.py --config=configs/vit_d.py --workdir=workdirs/vit_d

The lectures: D's architecture is free ("CNN, transformer"). D cuts each 64x64
face into 8x8 patches (64 tokens), embeds them with learned positions and mixes
them with 4 transformer blocks of width 128 (gan_jax/models/vit.py); G is
DCGAN's. Transformer discriminators are known to be harder to keep stable than
CNNs (ViTGAN), so this recipe adds R1 (weight 10; no BatchNorm in D, so the
penalty is per sample) and Adam with beta1 = 0. The same swap works from any
image config: --config.model.discriminator=vit (dcgan, resnet, biggan,
stylegan2; sizes under --config.model.vit.*). ViTGAN's Lipschitz fixes, off
here (its GPU comparison is pending), are flags:
  --config.model.vit.attention=l2 --config.model.d_spectral_norm=True
  --config.model.vit.improved_sn=True --config.model.vit.patch_overlap=4
"""

from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with a ViT discriminator, R1 and Adam (0, 0.99); `preset` as in dcgan.py."""
  config = dcgan.get_config(preset)
  config.model.discriminator = "vit"  # models/vit.py, sized by config.model.vit
  config.penalty.use = "r1"           # 10 * E ||grad_x D(x)||^2 on reals
  config.optim.g_betas = config.optim.d_betas = (0.0, 0.99)
  return config
