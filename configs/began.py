"""BEGAN (Berthelot et al., 2017) on the anime faces: an auto-encoder discriminator and an
equilibrium between G and D.

  python launch.py --config=configs/began.py --workdir=workdirs/began

D is an auto-encoder (gan_jax/models/began.py) scoring each image by its reconstruction
error L(x); it learns to reconstruct real faces well and generated ones badly (by
weight k), and G to make faces D reconstructs well. k is set by a controller, not
learned: after each D update it moves by lambda_k * (gamma * L(x) - L(G(z))), holding
E[L(G(z))] near gamma * E[L(x)]; lower gamma trades diversity for sharper faces. The
paper's convergence measure M_global = L(x) + |gamma L(x) - L(G(z))| is logged as
began_convergence: unlike the adversarial losses of the other recipes, it is meant to
fall as the samples improve. Logs also show began_k; d_real and d_fake are -L(x) and
-L(G(z)).

The paper's choices: z of 64 uniform in [-1, 1], code h of 64, width n = 64 (the
paper's best faces used 128), ELU, no normalisation, L1 error, Adam 1e-4 (betas 0.5,
0.999), gamma 0.5, lambda_k 0.001, k starting at 0. Its learning-rate decay and the
skip connections of its later variant are not included. Batch 64 (the paper's 16
would starve a GPU). What to expect: not measured on the anime faces yet (a 1,500-iteration
CPU run at 32x32: D reconstructs faces, blurred; G's samples are still blobs; k rises from
0 to 0.03 and M_global falls 0.34 -> 0.20; benchmarks/began_toy.md). On the toy ring BEGAN
collapses to one mode while M_global falls 7-11x (the same file): M_global tracks D's
reconstruction, not G's diversity, so watch the samples and the diversity metrics too.
"""

from configs import common
from configs import dcgan


def get_config(preset: str = ""):
  """dcgan.py with BEGAN's model, loss and optimizer; `preset` as in dcgan.py ('' or 'smoke')."""
  config = dcgan.get_config(preset)
  config.model.name = "began"
  config.model.embed_dim = 64           # size of D's auto-encoder code h
  config.model.reconstruction = "l1"    # D's error L: l1 (the paper's) | l2
  config.model.d_norm = "none"          # unused by BEGAN (no normalisation layers)
  config.loss = common.loss("began")    # its options: config.loss.began (gamma, lambda_k, k0)
  config.optim = common.optim(lr=1e-4, betas=(0.5, 0.999))
  config.train.batch_size = 64
  if preset == "smoke":
    config.model.latent_dim = 16
    config.model.embed_dim = 8
    config.train.batch_size = 16
  else:
    config.model.latent_dim = 64
    config.model.latent_dist = "uniform"
  return config
