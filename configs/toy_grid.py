"""The toy lab on 25 Gaussians in a 5x5 grid (2-D): harder mode coverage than the ring.

  python launch.py --config=configs/toy_grid.py --workdir=workdirs/toy_grid

Same pieces and flags as configs/toy_ring.py; the modes are 2 apart with
std 0.05 (VEEGAN/PacGAN's grid), so the plot window is [-7, 7]^2.
"""

from configs import toy_ring


def get_config(preset: str = ""):
  """toy_ring.py on the 25-mode grid; `preset` as in toy_ring.py ('' or 'smoke')."""
  config = toy_ring.get_config(preset)
  config.data.source = "toy:grid25"
  return config
