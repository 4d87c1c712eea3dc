"""DCGAN on the 64x64 anime faces: the lectures' running example, and the base of the recipes.

Every anime recipe (gan.py, lsgan.py, sngan.py, wgan.py, wgan_gp.py, sngan_resnet.py,
stylegan2.py, anime_tags.py) starts from this config and changes a few fields;
configs/anime.py is the best of them we measured. Train (GPU, TPU or, slowly, CPU);
run the same command again to resume:

  python launch.py --config=configs/dcgan.py --workdir=workdirs/dcgan

Override any field from the command line, e.g. another loss or learning rate:

  python launch.py --config=configs/dcgan.py --workdir=workdirs/dcgan_hinge \
      --config.loss.name=hinge --config.optim.d_lr=4e-4

Presets: `configs/dcgan.py:smoke` is a tiny model on a few hundred images that
runs a few steps in seconds on the CPU (used by the tests).

What to expect (the lecture's demo): eyes appear after ~1k iterations, mouths
by ~2k, a "watercolour" look by ~10k. Measured on one H100
(benchmarks/architectures.md): 16.7k images/s, and after 3 minutes (23.5k
iterations) the samples have COLLAPSED (100% near-duplicates, diversity 0.07x
real) although the face detector still finds faces in 90% of them, which is
why configs/anime.py uses the SNGAN-ResNet recipe instead. Outputs in the
workdir: samples/step_*.png (a fixed-z grid from the EMA generator),
metrics.jsonl, tensorboard/ and checkpoints/.
"""

import glob
import os

import ml_collections

from configs import common

# The project's copy of the faces, beside the repository (read in place).
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANIME_FACES_DIR = os.path.normpath(os.path.join(_REPO, "..", "shared", "data", "anime-faces"))
ANIME_FACES = os.path.join(ANIME_FACES_DIR, "*.zip")


def default_source(tfds_dir: str = "") -> str:
  """tfds:anime_faces once prepared (see gan_jax/data/anime_faces.py), else the zips.

  Prepare it with:
    python -m gan_jax.data.anime_faces --manual_dir=../shared/data/anime-faces
  """
  tfds_dir = tfds_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
      "~/tensorflow_datasets")
  if glob.glob(os.path.join(tfds_dir, "anime_faces", "64", "*", "dataset_info.json")):
    return "tfds:anime_faces"
  return "zip:" + ANIME_FACES


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  """The anime DCGAN config; `preset` is '' (the full run) or 'smoke'."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # everything random derives from this: init, batches, z

  config.data = ml_collections.ConfigDict()
  config.data.source = default_source()  # tfds:NAME[:SPLIT] | folder:/path | zip:/glob | a path
  config.data.tfds_dir = ""       # TFDS data dir ('': $TFDS_DATA_DIR or ~/tensorflow_datasets)
  config.data.split = "train"     # train: all but the held-out 1 in 20 (ids divisible by 20) that
                                  # evaluation compares with | test: only those | '': everything
  config.data.image_size = 64     # images are cropped and resized to this
  config.data.crop = "center"     # center: centre square crop | stretch: resize the whole image
  config.data.max_upscale = 2.0   # skip (and count) images needing more enlargement than this
  config.data.hflip = False       # random horizontal flips, drawn from (seed, step)
  config.data.max_images = 0      # use only the first N usable images (0: all)
  config.data.feed = "auto"       # device: decoded set in device memory | host: in host memory |
                                  # stream: decode batches on the fly | auto: by size
  config.data.prefetch = 4        # stream: batches decoded ahead (one thread each)
  config.data.cache = True        # decode once; reuse the uint8 array on later runs
  config.data.cache_dir = ""      # where ('': $XDG_CACHE_HOME/gan_jax or ~/.cache/gan_jax)

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"           # architecture family (gan_jax.models.MODELS)
  config.model.g_width = 64             # generator channels at its last hidden layer (ngf)
  config.model.d_width = 64             # discriminator channels at its first layer (ndf)
  config.model.d_norm = "batch"         # discriminator normalisation: batch | layer | none
  config.model.d_spectral_norm = False  # reparameterise D's convs as W / sigma(W) (SNGAN layer)
  config.model.g_spectral_norm = False  # the same for G's layers (as SAGAN/BigGAN do)
  config.model.upconv = "phases"        # how G's x2 upsampling convs compute: phases | stacked |
                                        # stacked_gemm | transpose (models/layers.py UpConv; same
                                        # function and parameters; benchmarks/README.md has
                                        # their speeds)
  config.model.downconv = "auto"        # how D's stride-2 convs compute: strided | s2d (space-
                                        # to-depth; models/layers.py DownConv) | auto: s2d on
                                        # GPU (measured faster there), strided elsewhere
  config.model.discriminator = ""       # '' (the family's own D) | vit: a vision transformer
                                        # D (models/vit.py; models.SWAPPABLE_FAMILIES)
  config.model.vit = ml_collections.ConfigDict(dict(
      patch_size=8,  # pixels per patch side (divides data.image_size): (64 / 8)^2 = 64 tokens
      width=128,     # token embedding size
      depth=4,       # transformer blocks
      heads=4,       # attention heads (divide width)
      mlp_ratio=4,   # MLP hidden size / width
      # ViTGAN's fixes (models/vit.py), off here:
      attention="dot",    # dot | l2: distance scores, tied queries/keys (Lipschitz)
      improved_sn=False,  # with model.d_spectral_norm: each map keeps its initial sigma
      patch_overlap=0))   # pixels each token's window reaches into its neighbours
  config.model.latent_dim = 100         # size of z
  config.model.latent_dist = "gaussian"  # p(z): gaussian | uniform
  config.model.dtype = "float32"        # compute dtype in training: float32 | bfloat16 (mixed
                                        # precision: parameters and optimizer state stay float32)

  config.loss = common.loss("non_saturating")  # any loss: configs/common.py lists them
  config.constraint = common.constraint()  # none by default; see configs/wgan.py, sngan.py
  config.penalty = common.penalty()  # none by default; see configs/wgan_gp.py
  config.augment = common.augment()  # DiffAugment of D's inputs; off by default
  config.optim = common.optim(lr=2e-4, betas=(0.5, 0.999))  # DCGAN's Adam

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128  # global batch (split over all devices)
  config.train.num_steps = 50_000  # iterations; each = d_steps D updates + 1 G update
  config.train.d_steps = 1       # discriminator updates per generator update
  config.train.d_loop = "unroll"  # how the D updates compile: unroll (a Python loop; fastest
                                 # on the CPU) | scan (one lax.scan: one D update compiled)
  config.train.d_passes = "separate"  # D's loss on reals and fakes: separate (two D calls) |
                                 # fused (one call on both, batch statistics per half)
  config.train.lazy_branching = "auto"  # lazy regularisers' off-iterations: cond (skipped) |
                                 # select (computed and dropped: faster on XLA's CPU backend) |
                                 # auto (select on the CPU, cond elsewhere)
  config.train.microbatches = 1  # m > 1: each update's gradient is the mean over m micro-
                                 # batches of batch_size / m, computed one after another
                                 # (gradient accumulation: less activation memory; batch
                                 # statistics per micro-batch)
  config.train.max_minutes = 0.0  # also stop (and save) after this much time in the loop (0: off)
  config.train.iterations_per_call = 1  # K > 1: K iterations per device call (one lax.scan)
                                 # where nothing is due inside; needs data.feed=device. The
                                 # same run to float rounding, fewer dispatches (benchmarks/)

  config.ema = common.ema(decay=0.999)
  config.log = common.log(every=100)

  config.sample = ml_collections.ConfigDict()
  config.sample.every = 1000  # write a PNG grid from fixed z every N iterations
  config.sample.num = 64      # images in the grid

  config.checkpoint = common.checkpoint(every=2000)
  # Offline metrics (no downloads) every 5000 iterations; keeps the best checkpoint by FD-anime.
  # Add fid,kid,pr with config.eval.inception_path, afd with animeface installed (Pillow < 12),
  # memorisation (compares with the held-out split). One evaluation of 5000 samples took 17 s
  # on a 2-core CPU, generation included (benchmarks/evaluation.md); GPU cost not measured yet.
  config.eval = common.evaluation(every=5000, metrics="fd_anime,kid_anime,tags,duplicates")
  config.eval.best = "fd_anime"

  if preset == "smoke":
    config.data.image_size = 16
    config.data.max_images = 256
    config.model.g_width = 8
    config.model.d_width = 8
    config.model.latent_dim = 16
    config.model.vit.update(patch_size=4, width=16, depth=1, heads=2)  # (16 / 4)^2 tokens
    config.train.batch_size = 16
    config.train.num_steps = 4
    config.log.every = 1
    config.log.diagnostics = False  # each costs a compile; tests/test_diagnostics.py covers them
    config.sample.every = 2
    config.sample.num = 16
    config.checkpoint.every = 2
    config.eval.every = 0  # tests/test_evaluate.py turns it on
    config.eval.num_samples = 32
    config.eval.num_real = 64
    config.eval.num_heldout = 32
    config.eval.batch_size = 16
    config.eval.kid_subset_size = 16
    config.eval.kid_subsets = 10
    config.eval.afd_num = 16
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for configs/dcgan.py; choose from: smoke")
  return config
