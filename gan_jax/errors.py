"""Errors whose message tells the user what to fix (no traceback needed)."""

import sys
from typing import Any, Callable


class UserError(Exception):
  """A problem with the run's inputs (config, data, workdir) or its numerics.

  `launch.py` prints the message alone and exits non-zero; everything else is
  a bug and keeps its traceback.
  """


class ConfigError(UserError, ValueError):
  """The config names something that does not exist or is inconsistent."""


class DataError(UserError):
  """The training images could not be found or read."""


class NonFiniteError(UserError, FloatingPointError):
  """A loss, output or gradient norm became NaN or Inf during training."""


def run_command(compute: Callable[[], Any]) -> Any:
  """compute()'s result, for the command-line tools: a UserError is printed alone on stderr
  ('error: ...') and exits with status 1; other exceptions keep their traceback."""
  try:
    return compute()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
