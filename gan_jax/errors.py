"""Errors whose message tells the user what to fix (no traceback needed)."""


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
