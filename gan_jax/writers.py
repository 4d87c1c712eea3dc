"""Run outputs: metrics.jsonl, TensorBoard event files, PNG grids, a progress bar.

TensorBoard events are written with the `tensorboard` package's record writer
and protos only, so TensorFlow is never imported.
"""

import io
import json
import math
import os
import socket
import sys
import time
from typing import Dict, Mapping, Optional

import numpy as np
from PIL import Image


def make_grid(images: np.ndarray, columns: Optional[int] = None, pad: int = 2) -> np.ndarray:
  """uint8 (N, H, W, C) -> one uint8 image tiling them, `columns` wide (default: square)."""
  images = np.asarray(images)
  n, h, w, c = images.shape
  columns = columns or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / columns))
  grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top:top + h, left:left + w] = image
  return grid


def encode_png(image: np.ndarray) -> bytes:
  """uint8 (H, W, 3) or (H, W, 1) -> PNG bytes."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def save_png(path: str, image: np.ndarray) -> None:
  """Writes uint8 `image` to `path` as PNG (atomically: no half-written files)."""
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(encode_png(image))
  os.replace(tmp, path)


class JsonlWriter:
  """Appends {"step": s, **scalars} lines to a JSON-lines file."""

  def __init__(self, path: str):
    self.path = path

  def truncate_after(self, step: int) -> None:
    """Drops lines of steps > `step` (left by a run killed after its last checkpoint)."""
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [l for l in f if l.strip()]
    keep = []
    for line in lines:
      try:
        if json.loads(line)["step"] <= step:
          keep.append(line)
      except (ValueError, KeyError):
        break  # a torn last line from a killed run
    with open(self.path + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(self.path + ".tmp", self.path)

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}}) + "\n")


class TensorBoardWriter:
  """Scalars and images into a TensorBoard event file, without TensorFlow."""

  def __init__(self, logdir: str):
    from tensorboard.compat.proto import event_pb2, summary_pb2  # pylint: disable=g-import-not-at-top
    from tensorboard.summary.writer.record_writer import RecordWriter  # pylint: disable=g-import-not-at-top
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
    self.path = os.path.join(logdir, name)
    self._writer = RecordWriter(open(self.path, "wb"))
    self._write(self._event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def _write(self, event) -> None:
    self._writer.write(event.SerializeToString())

  def _summary(self, step: int, values) -> None:
    self._write(self._event_pb2.Event(
        wall_time=time.time(), step=int(step),
        summary=self._summary_pb2.Summary(value=values)))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    self._summary(step, [self._summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                         for k, v in scalars.items()])

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    h, w = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    encoded = self._summary_pb2.Summary.Image(
        height=h, width=w, colorspace=channels, encoded_image_string=encode_png(image))
    self._summary(step, [self._summary_pb2.Summary.Value(tag=tag, image=encoded)])

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class RunWriter:
  """Everything a run writes to its workdir: metrics.jsonl, events, samples/*.png."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.sample_dir = os.path.join(workdir, "samples")
    os.makedirs(self.sample_dir, exist_ok=True)
    self.jsonl = JsonlWriter(os.path.join(workdir, "metrics.jsonl"))
    self.tensorboard = TensorBoardWriter(os.path.join(workdir, "tensorboard"))

  def truncate_after(self, step: int) -> None:
    """Drops metrics.jsonl lines of steps > `step` (see JsonlWriter.truncate_after)."""
    self.jsonl.truncate_after(step)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    self.jsonl.write(step, scalars)
    self.tensorboard.write_scalars(step, scalars)

  def write_samples(self, step: int, picture: np.ndarray) -> str:
    """Writes a uint8 picture of samples (a grid, a scatter plot) as
    samples/step_XXXXXXX.png and to TensorBoard."""
    path = os.path.join(self.sample_dir, f"step_{step:07d}.png")
    save_png(path, picture)
    self.tensorboard.write_image(step, "samples", picture)
    return path

  def flush(self) -> None:
    self.tensorboard.flush()

  def close(self) -> None:
    self.tensorboard.close()


class NullRunWriter:
  """RunWriter's methods, writing nothing: processes other than 0 of a multi-process run."""

  def truncate_after(self, step: int) -> None:
    """Nothing to truncate."""

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Drops the scalars."""

  def write_samples(self, step: int, picture: np.ndarray) -> str:
    """Drops the picture; returns ''."""
    return ""

  def flush(self) -> None:
    """Nothing to flush."""

  def close(self) -> None:
    """Nothing to close."""


def make_run_writer(workdir: str, primary: bool = True):
  """A RunWriter into `workdir` on the primary process (0), a NullRunWriter elsewhere, so that
  a multi-process run writes one metrics.jsonl, one event file and one set of samples."""
  return RunWriter(workdir) if primary else NullRunWriter()


def format_scalars(scalars: Mapping[str, float]) -> str:
  """'d_loss=1.234 g_loss=0.567 ...' with 4 significant digits."""
  return " ".join(f"{k}={v:.4g}" for k, v in scalars.items())


class Progress:
  """A console progress bar (tqdm) with steps/s, images/s, ETA and the latest losses.

  Off a terminal (cluster logs) the bar is replaced by one line per `update`
  with the same figures. `quiet` (processes other than 0 of a multi-process
  run) prints nothing but still measures the speed.
  """

  def __init__(self, total: int, initial: int, images_per_step: int,
               stream=None, use_bar: Optional[bool] = None, deadline: float = math.inf,
               quiet: bool = False):
    self.total, self.images_per_step, self.quiet = total, images_per_step, quiet
    self.deadline = deadline  # time.monotonic() at which the run stops anyway (max_minutes)
    self.stream = stream or sys.stderr
    self._step, self._time = initial, time.perf_counter()
    use_bar = self.stream.isatty() if use_bar is None else use_bar
    use_bar = use_bar and not quiet
    self._bar = None
    if use_bar:
      try:
        import tqdm  # pylint: disable=g-import-not-at-top
        self._bar = tqdm.tqdm(total=total, initial=initial, unit="step",
                              file=self.stream, dynamic_ncols=True)
      except ImportError:
        pass

  def update(self, step: int, scalars: Mapping[str, float]) -> Dict[str, float]:
    """Moves the bar to `step`; returns the speed since the previous update."""
    now = time.perf_counter()
    steps = step - self._step
    rate = steps / max(now - self._time, 1e-9)
    speed = {"steps_per_sec": rate, "images_per_sec": rate * self.images_per_step}
    self._step, self._time = step, now
    losses = {k: v for k, v in scalars.items() if k.endswith("_loss")}
    if self._bar is not None:
      self._bar.update(steps)
      self._bar.set_postfix_str(
          f"{speed['images_per_sec']:.0f} img/s {format_scalars(losses)}", refresh=False)
    elif steps > 0 and not self.quiet:
      eta = (self.total - step) / rate if rate > 0 else float("inf")
      eta = min(eta, max(0.0, self.deadline - time.monotonic()))
      self.write(f"step {step}/{self.total} {rate:.2f} steps/s "
                 f"{speed['images_per_sec']:.0f} img/s eta {_format_seconds(eta)} "
                 f"{format_scalars(losses)}")
    return speed

  def write(self, line: str) -> None:
    """Prints `line` above the bar (nothing when quiet)."""
    if self.quiet:
      return
    if self._bar is not None:
      self._bar.write(line, file=self.stream)
    else:
      print(line, file=self.stream, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def _format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}:{m:02d}:{s:02d}"


def quiet_library_logs(libraries=("orbax",)) -> None:
  """Hides INFO lines that `libraries` send through absl logging (warnings still show)."""
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  markers = tuple(f"{os.sep}{lib}{os.sep}" for lib in libraries)

  def keep(record) -> bool:
    return record.levelno >= std_logging.WARNING or not any(
        m in record.pathname for m in markers)

  absl_logging.get_absl_handler().addFilter(keep)
