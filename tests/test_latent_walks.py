"""Latent walks (gan_jax/latent_walks.py): the paths by hand, the cross-fade gap, and the
command on a trained run."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from gan_jax import latent_walks, sample_tags, train
from gan_jax.errors import UserError

pytestmark = pytest.mark.mesh_devices(1)  # feature tests: one device (conftest)


def test_linear_and_spherical_interpolation_by_hand():
  z0, z1 = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 3.0, 0.0])
  line = latent_walks.interpolate(z0, z1, 3, "linear")
  np.testing.assert_allclose(line, [[1, 0, 0], [0.5, 1.5, 0], [0, 3, 0]], atol=1e-6)
  arc = latent_walks.interpolate(z0, z1, 3, "slerp")
  np.testing.assert_allclose(np.asarray(arc)[[0, 2]], np.asarray(line)[[0, 2]], atol=1e-6)  # ends
  # Halfway round the quarter circle, at the mean of the two norms.
  np.testing.assert_allclose(arc[1], 2.0 * np.array([1, 1, 0]) / np.sqrt(2), atol=1e-6)
  norms = np.linalg.norm(latent_walks.interpolate(z0, z1, 5, "slerp"), axis=1)
  np.testing.assert_allclose(norms, [1, 1.5, 2, 2.5, 3], atol=1e-5)
  parallel = latent_walks.interpolate(z0, 2 * z0, 3, "slerp")  # no circle: the line
  np.testing.assert_allclose(parallel, [[1, 0, 0], [1.5, 0, 0], [2, 0, 0]], atol=1e-6)
  with pytest.raises(ValueError, match="unknown interpolation 'cubic'; choose from: slerp"):
    latent_walks.interpolate(z0, z1, 3, "cubic")
  with pytest.raises(ValueError, match="at least 2 points, got 1"):
    latent_walks.interpolate(z0, z1, 1)


def test_sweeps_change_one_coordinate_per_row():
  z = latent_walks.sweep_latents(0, [2, 0], 5, 4, "gaussian", extent=2.0)
  assert z.shape == (2, 5, 4)
  base = np.asarray(z[0, 0]).copy()
  base[2] = z[1, 0, 2]  # the latent both rows start from
  for row, d in enumerate([2, 0]):
    np.testing.assert_allclose(z[row, :, d], [-2, -1, 0, 1, 2], atol=1e-6)
    others = np.delete(np.asarray(z[row]), d, axis=1)
    np.testing.assert_array_equal(others, np.tile(np.delete(base, d), (5, 1)))
  with pytest.raises(ValueError, match=r"coordinates in \[0, 4\), got \[4\]"):
    latent_walks.sweep_latents(0, [4], 5, 4, "gaussian", 2.0)


def test_crossfade_gap_by_hand():
  fade = np.linspace(0, 1, 5)[:, None, None, None] * np.full((1, 2, 2, 3), 8.0)
  assert latent_walks.crossfade_gap(fade[None])[0] == pytest.approx(0.0, abs=1e-12)
  # One pixel: ends 0 and 2, middle 5 where a cross-fade has 1: |5 - 1| / |0 - 2| = 2.
  walk = np.array([0.0, 5.0, 2.0]).reshape(1, 3, 1, 1, 1)
  assert latent_walks.crossfade_gap(walk)[0] == pytest.approx(2.0)


def test_the_command_draws_walks_of_a_trained_run(tmp_path, smoke_config):
  smoke_config.train.num_steps = 2
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(smoke_config, workdir)
  size = smoke_config.data.image_size
  out = str(tmp_path / "walks" / "interpolate.png")
  result = latent_walks.latent_walks(workdir, "interpolate", out, rows=3, columns=5)
  assert result["step"] == 2 and (result["rows"], result["columns"]) == (3, 5)
  assert np.asarray(Image.open(out)).shape == (3 * (size + 2) + 2, 5 * (size + 2) + 2, 3)
  assert result["crossfade_gap"]["mean"] > 0  # not a cross-fade of its ends
  again = latent_walks.latent_walks(workdir, "interpolate", out, rows=3, columns=5)
  assert again == result  # latents fixed by the seed
  sweep = latent_walks.latent_walks(workdir, "sweep", str(tmp_path / "sweep.png"), columns=4,
                                    dims=[0, 5])
  assert (sweep["rows"], sweep["columns"]) == (2, 4) and "crossfade_gap" not in sweep
  with pytest.raises(UserError, match=r"--dims needs coordinates in \[0, 16\), got \[100\]"):
    latent_walks.latent_walks(workdir, "sweep", out, dims=[100])
  with pytest.raises(UserError, match="--columns >= 3"):
    latent_walks.latent_walks(workdir, "interpolate", out, columns=2)
  with pytest.raises(UserError, match="is unconditional"):
    sample_tags.sample_tags(workdir, "blue hair red eyes", 4, out)
  with pytest.raises(UserError, match="--tags='blue hair red eyes': the run is unconditional"):
    latent_walks.latent_walks(workdir, "interpolate", out, tags="blue hair red eyes")


def test_the_command_line_says_where_it_looked(tmp_path):
  run = subprocess.run([sys.executable, "-m", "gan_jax.latent_walks",
                        f"--workdir={tmp_path}"], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert run.returncode == 1
  assert f"no checkpoints in {tmp_path}/checkpoints: train with launch.py first" in run.stderr
