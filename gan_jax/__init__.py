"""gan_jax: Generative Adversarial Networks in JAX/Flax.

Modules, one job each:
  losses      adversarial losses (LOSSES registry)
  latents     latent distributions z ~ p(z) (LATENTS registry)
  models/     generator/discriminator families (MODELS registry)
  optim       optax chains per network from the config
  state       the TrainState pytree and its creation
  step        the pure, jitted D/G train step
  parallel    device mesh and shardings
  data/       image loading and batch selection
  checkpoint  Orbax checkpoints (the only module importing orbax)
  sampling    images from the (EMA) generator
  writers     metrics.jsonl, TensorBoard events, PNG grids, progress bar
  train       train_and_evaluate(config, workdir)
"""

__version__ = "0.1.0"
