"""Pictures of low-dimensional samples (the toy lab), drawn with Pillow alone."""

from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

_REFERENCE = (190, 190, 190)  # data: light grey
_SAMPLES = (31, 119, 180)     # generated: blue
_CENTERS = (214, 39, 40)      # mode centres: red


def scatter(samples: np.ndarray, *, extent: float, reference: Optional[np.ndarray] = None,
            centers: Optional[np.ndarray] = None, size: int = 512) -> np.ndarray:
  """uint8 (size, size, 3) image of 2-D `samples` (blue) over `reference` data (grey) and
  mode `centers` (red crosses), in the square [-extent, extent]^2 (y up); points outside
  it are clipped to the border, so an escaped generator stays visible."""
  image = Image.new("RGB", (size, size), (255, 255, 255))
  draw = ImageDraw.Draw(image)

  def pixels(points):
    points = np.asarray(points, np.float64).reshape(len(points), -1)[:, :2]
    uv = (points / extent + 1.0) * 0.5 * (size - 1)
    uv[:, 1] = size - 1 - uv[:, 1]
    return np.clip(np.nan_to_num(uv, nan=0.0), 0, size - 1)

  middle = (size - 1) / 2
  draw.line([(0, middle), (size - 1, middle)], fill=(235, 235, 235))
  draw.line([(middle, 0), (middle, size - 1)], fill=(235, 235, 235))
  for points, colour, radius in ((reference, _REFERENCE, 1.5), (samples, _SAMPLES, 1.5)):
    if points is None:
      continue
    for u, v in pixels(points):
      draw.ellipse([u - radius, v - radius, u + radius, v + radius], fill=colour)
  if centers is not None:
    for u, v in pixels(centers):
      draw.line([(u - 5, v), (u + 5, v)], fill=_CENTERS, width=2)
      draw.line([(u, v - 5), (u, v + 5)], fill=_CENTERS, width=2)
  return np.asarray(image)
