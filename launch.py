"""Trains a GAN: python launch.py --config=configs/anime.py --workdir=DIR.

Any config field can be overridden, e.g. --config.loss.name=hinge. Rerunning
with the same --workdir resumes from its newest checkpoint. On several hosts,
run the same command on each with --coordinator_address=HOST0:PORT
--num_processes=P --process_id=I, or with --distributed under SLURM, Open MPI
or on a TPU pod (README, "Devices"). All logic lives in gan_jax; this file
only parses flags.
"""

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/anime.py or configs/anime.py:smoke.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, samples and metrics; reuse it to resume.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "Multi-process run: HOST:PORT of process 0's coordinator, the same on every process.")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Multi-process run: how many processes take part.")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "Multi-process run: this process's number, 0 .. num_processes - 1.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Multi-process run: detect what the flags above leave unset from SLURM, Open MPI or a "
    "Cloud TPU pod.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from gan_jax import parallel  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  from gan_jax import writers  # pylint: disable=g-import-not-at-top
  from gan_jax.errors import run_command  # pylint: disable=g-import-not-at-top
  writers.quiet_library_logs()

  def run():
    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                    auto_detect=_DISTRIBUTED.value)
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  run_command(run)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main)
