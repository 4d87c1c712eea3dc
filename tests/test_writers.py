"""Run outputs: grids, PNGs, metrics.jsonl truncation on resume, the progress line."""

import io
import json

import numpy as np
from PIL import Image

from gan_jax import writers
from gan_jax.sampling import to_uint8


def test_grid_places_images_row_by_row():
  images = np.stack([np.full((2, 3, 3), i, np.uint8) for i in range(5)])
  grid = writers.make_grid(images, columns=3, pad=1)
  assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 3)
  assert grid[1, 1, 0] == 0 and grid[1, 5, 0] == 1 and grid[1, 9, 0] == 2
  assert grid[4, 1, 0] == 3 and grid[4, 5, 0] == 4
  assert grid[4, 9, 0] == 255 and grid[0, 0, 0] == 255  # empty cell and padding are white


def test_png_round_trip(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
  writers.save_png(str(tmp_path / "a.png"), image)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), image)
  assert not (tmp_path / "a.png.tmp").exists()


def test_to_uint8_maps_the_tanh_range():
  np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0, 1.5, -7.0])),
                                [0, 128, 255, 255, 0])


def test_metrics_after_the_resumed_step_are_dropped(tmp_path):
  """A run killed after its last checkpoint logged steps that the resumed run redoes."""
  writer = writers.JsonlWriter(str(tmp_path / "metrics.jsonl"))
  for step in range(1, 6):
    writer.write(step, {"loss": step / 10})
  with open(writer.path, "a") as f:
    f.write('{"step": 6, "lo')  # torn by the kill
  writer.truncate_after(3)
  rows = [json.loads(line) for line in open(writer.path)]
  assert rows == [{"step": 1, "loss": 0.1}, {"step": 2, "loss": 0.2}, {"step": 3, "loss": 0.3}]
  writer.write(4, {"loss": 1.0})
  assert json.loads(open(writer.path).read().splitlines()[-1]) == {"step": 4, "loss": 1.0}


def test_progress_line_off_a_terminal():
  stream = io.StringIO()
  progress = writers.Progress(total=100, initial=0, images_per_step=64, stream=stream)
  speed = progress.update(10, {"d_loss": 1.23456, "g_loss": 0.5, "d_real": 3.0})
  progress.close()
  line = stream.getvalue()
  assert line.startswith("step 10/100 ") and "steps/s" in line and "img/s" in line
  assert "eta " in line and "d_loss=1.235 g_loss=0.5" in line and "d_real" not in line
  np.testing.assert_allclose(speed["images_per_sec"], 64 * speed["steps_per_sec"])


def test_progress_eta_stops_at_the_time_limit():
  """With train.max_minutes the ETA is the time left, not the (huge) step count's."""
  import time  # pylint: disable=g-import-not-at-top
  stream = io.StringIO()
  progress = writers.Progress(total=10**8, initial=0, images_per_step=1, stream=stream,
                              deadline=time.monotonic() + 90)
  time.sleep(0.01)
  progress.update(1, {})
  progress.close()
  assert " eta 0:01:29 " in stream.getvalue() or " eta 0:01:30 " in stream.getvalue()


def test_progress_bar_on_a_terminal():
  stream = io.StringIO()
  progress = writers.Progress(total=100, initial=20, images_per_step=8, stream=stream,
                              use_bar=True)
  progress.update(30, {"g_loss": 0.25})
  progress.close()
  text = stream.getvalue()
  assert "30/100" in text and "img/s" in text and "g_loss=0.25" in text
