"""Trains a GAN: python launch.py --config=configs/anime.py --workdir=DIR.

Any config field can be overridden, e.g. --config.loss.name=hinge. Rerunning
with the same --workdir resumes from its newest checkpoint. All logic lives in
gan_jax.train; this file only parses flags.
"""

import sys

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/anime.py or configs/anime.py:smoke.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, samples and metrics; reuse it to resume.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  from gan_jax import writers  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  writers.quiet_library_logs()
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main)
