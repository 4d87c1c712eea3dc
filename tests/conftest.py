"""Test setup: 8 virtual CPU devices (for sharding tests) and small image data."""

import glob
import os
import sys

# The suite is compile-bound (hundreds of tiny programs, each compiled once), so it
# compiles cheaply: LLVM's backend optimisation off, its expensive passes off and XLA:CPU's
# older loop emitters instead of its fusion emitters (measured on a 2-core VM: the StyleGAN2
# recipe's smoke run 20 s -> 11 s for the first; with the other two, that test plus the
# conditional step test 57 s -> 35-42 s), for slower execution. Set before JAX starts its
# CPU backend; subprocesses the tests start inherit it. The lab's long runs compile with
# XLA's defaults whatever XLA_FLAGS says (gan_jax/lab.py: jit_long_run).
# Launch helpers that build a subprocess environment use TEST_XLA_FLAGS too, so that
# runs they compare with in-process ones compile the same way.
# XLA:CPU also splits each program's LLVM module for parallel code generation, which for
# programs this small costs more than it saves: one part only (measured on a 2-core VM,
# 2026-11-24, under `-n 2`: four feature modules 66.1 / 65.1 s -> 63.0 / 63.2 s, the toy
# lab with test_step and test_conditional 126 -> 119 s).
TEST_XLA_FLAGS = " ".join(["--xla_backend_optimization_level=0",
                           "--xla_llvm_disable_expensive_passes=true",
                           "--xla_cpu_use_fusion_emitters=false",
                           "--xla_cpu_parallel_codegen_split_count=1"])
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), TEST_XLA_FLAGS]).strip()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

# Must happen before any JAX computation initialises the CPU backend.
jax.config.update("jax_num_cpu_devices", 8)
# The tests build the same tiny programs many times (every run compiles its
# step anew): a persistent compilation cache for this session compiles each once,
# shared by pytest-xdist's workers (one directory per test run, removed by the
# controlling process when the run ends; see pytest_unconfigure).
import atexit  # pylint: disable=g-import-not-at-top,wrong-import-position
import shutil  # pylint: disable=g-import-not-at-top,wrong-import-position
import tempfile  # pylint: disable=g-import-not-at-top,wrong-import-position


def _shared_xla_cache(controller_pid: int) -> str:
  return os.path.join(tempfile.gettempdir(), f"gan_jax_xla_cache_{controller_pid}")


if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker: its controller (parent) run's directory
  _XLA_CACHE = _shared_xla_cache(os.getppid())
  os.makedirs(_XLA_CACHE, exist_ok=True)
else:
  _XLA_CACHE = tempfile.mkdtemp(prefix="gan_jax_xla_cache_")
  atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import numpy as np  # pylint: disable=g-import-not-at-top
from PIL import Image  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from configs import anime, dcgan  # pylint: disable=g-import-not-at-top,wrong-import-position

# The smallest of the real anime-face zips, when this machine has them.
REAL_FACES_ZIP = sorted(glob.glob(anime.ANIME_FACES))[-1:] or [None]
REAL_FACES_ZIP = REAL_FACES_ZIP[0]


def set_fields(config, overrides, separator: str = "."):
  """`config` with each value of `overrides` ({'section<separator>field': value}, sections
  nested to any depth) set in place; returns it."""
  for field, value in overrides.items():
    *sections, key = field.split(separator)
    node = config
    for section in sections:
      node = node[section]
    node[key] = value
  return config


def write_synthetic_faces(folder: str, count: int = 64, size: int = 24, seed: int = 0) -> str:
  """`count` PNGs of coloured ellipses on a background ("faces" enough for a smoke run)."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size] / size
  for i in range(count):
    image = np.empty((size, size, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    cy, cx, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.15, 0.35)]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    image[inside] = rng.integers(0, 256, 3)
    Image.fromarray(image).save(os.path.join(folder, f"{i:04d}.png"))
  return folder


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "mesh_devices(n): runs train (and whatever builds the default mesh) on the "
      "first n of the 8 CPU devices (conftest: _mesh_devices)")


@pytest.fixture(autouse=True)
def _mesh_devices(request, monkeypatch):
  """Under @pytest.mark.mesh_devices(n) (the closest mark wins: a test's own overrides its
  module's), parallel.make_mesh() defaults to the first n devices; unmarked tests get all 8.

  The step is global-view SPMD (jit over a mesh with NamedSharding): a feature's math does
  not depend on how many devices share the batch. What does depend on them (the feeders'
  per-device shards, the partitioned step equal to the 1-device one, 2 processes) is tested
  on all 8: tests/test_step.py, test_feeding.py, test_multiprocess.py. The end-to-end
  modules (test_train.py: resume, the CLI; test_evaluate.py, test_toy.py) train data
  parallel on 2: a sharded batch and replicated state as on 8, for less time per step and
  per save (measured on a 2-core VM, 2026-11-24: the three modules 75 -> 67 s under
  `-n 2`). Feature modules whose runs are the suite's slowest (the recipes'
  smoke runs, ADA, ProGAN, BEGAN, conditional runs) take one device. Measured on the 2-core
  VM (2026-11-23), these modules with test_biggan, test_resnet and test_stylegan2 (which
  gained nothing and stay on 8): 611 -> 523 worker-seconds; the recipe runs that resume,
  25-31 s -> 15-21 s each.
  """
  marker = request.node.get_closest_marker("mesh_devices")
  if marker is None:
    return
  from gan_jax import parallel  # pylint: disable=g-import-not-at-top
  count, make_mesh = marker.args[0], parallel.make_mesh
  monkeypatch.setattr(parallel, "make_mesh", lambda devices=None: make_mesh(
      jax.devices()[:count] if devices is None else devices))


@pytest.fixture
def fusion_emitters(monkeypatch):
  """Every jax.jit in the test compiles with XLA:CPU's fusion emitters (its default, which
  TEST_XLA_FLAGS turns off): for tests asserting two different programs bit-identical, which
  holds as users compile (checked with all of XLA's defaults too) but not under the
  suite's older loop emitters, whose fused elementwise work can round differently."""
  jit = jax.jit

  def jit_with_fusion_emitters(*args, **kwargs):
    kwargs["compiler_options"] = {"xla_cpu_use_fusion_emitters": True,
                                  **(kwargs.get("compiler_options") or {})}
    return jit(*args, **kwargs)

  monkeypatch.setattr(jax, "jit", jit_with_fusion_emitters)


@pytest.fixture(scope="session")
def face_data(tmp_path_factory) -> str:
  """A data path for training tests: real anime faces if present, generated images otherwise."""
  if REAL_FACES_ZIP is not None:
    return REAL_FACES_ZIP
  return write_synthetic_faces(str(tmp_path_factory.mktemp("faces")))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
  """A decode cache shared by the tests (never the user's ~/.cache)."""
  return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def smoke_config(face_data, cache_dir):
  """configs/dcgan.py:smoke pointed at the test data."""
  config = dcgan.get_config("smoke")
  config.data.source = face_data
  config.data.cache_dir = cache_dir
  return config


def write_anime_manual_dir(folder: str, count: int = 40) -> str:
  """A miniature manual_dir for the anime_faces builder: one zip of <id>.jpg and tags.csv."""
  import zipfile  # pylint: disable=g-import-not-at-top
  images = write_synthetic_faces(os.path.join(folder, "png"), count=count, size=64)
  os.makedirs(folder, exist_ok=True)
  with zipfile.ZipFile(os.path.join(folder, "faces64-000.zip"), "w") as archive:
    for i, name in enumerate(sorted(os.listdir(images))):
      jpeg = os.path.join(folder, f"{i}.jpg")
      Image.open(os.path.join(images, name)).convert("RGB").save(jpeg, quality=95)
      archive.write(jpeg, f"{i}.jpg")
      os.remove(jpeg)
  with open(os.path.join(folder, "tags.csv"), "w") as f:
    f.write("id,tags\n0,blonde long hair and purple eyes\n1,bicolored eyes\n"
            "3,black brown short hair and blue red eyes\n20,long hair\n")
  return folder


@pytest.fixture(scope="session")
def anime_tfds_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding anime_faces (config 64) prepared from a miniature manual_dir."""
  from gan_jax.data import anime_faces  # pylint: disable=g-import-not-at-top
  manual = write_anime_manual_dir(str(tmp_path_factory.mktemp("anime_manual")))
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  anime_faces.prepare(manual, data_dir)
  return data_dir


def write_tagged_faces(folder: str, count: int = 96, size: int = 16) -> str:
  """A miniature labelled anime set: `faces.zip` of `<id>.jpg` (ids 1..count) and tags.csv.

  Face `id` has hair colour class id % 5 and eye colour class (id // 3) % 4 (indices into
  anime_tags.HAIR_COLORS / EYE_COLORS), painted into the image so that a batch shows its
  labels: the top half's red channel is 40 * hair + 20, the bottom half's green channel
  50 * eye + 25 (`tagged_colours` reads them back), blue is id (every file differs). Every
  7th id is tagged with two hair colours and every 11th has no tags line: both are dropped
  by a labelled pipeline.
  """
  import zipfile  # pylint: disable=g-import-not-at-top
  from gan_jax.data import anime_tags  # pylint: disable=g-import-not-at-top
  os.makedirs(folder, exist_ok=True)
  lines = ["id,tags"]
  with zipfile.ZipFile(os.path.join(folder, "faces.zip"), "w") as archive:
    for i in range(1, count + 1):
      hair, eye = i % 5, (i // 3) % 4
      image = np.zeros((size, size, 3), np.uint8)
      image[:size // 2, :, 0] = 40 * hair + 20
      image[size // 2:, :, 1] = 50 * eye + 25
      image[..., 2] = i
      path = os.path.join(folder, f"{i}.jpg")
      Image.fromarray(image).save(path, quality=95)
      archive.write(path, f"{i}.jpg")
      os.remove(path)
      if i % 11 == 0:
        continue
      second = f" {anime_tags.HAIR_COLORS[(hair + 1) % 5]}" if i % 7 == 0 else ""
      lines.append(f"{i},{anime_tags.HAIR_COLORS[hair]}{second} hair and "
                   f"{anime_tags.EYE_COLORS[eye]} eyes")
  with open(os.path.join(folder, "tags.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return folder


def tagged_colours(images: np.ndarray) -> np.ndarray:
  """The (hair, eye) classes painted into write_tagged_faces images: int (..., 2)."""
  images = np.asarray(images).astype(np.float64)
  hair = np.round((images[..., 0, 0, 0] - 20) / 40)
  eye = np.round((images[..., -1, -1, 1] - 25) / 50)
  return np.stack([hair, eye], axis=-1).astype(np.int32)


@pytest.fixture(scope="session")
def tagged_faces(tmp_path_factory) -> str:
  """The `zip:` source of a write_tagged_faces folder (tags.csv beside the zip)."""
  folder = write_tagged_faces(str(tmp_path_factory.mktemp("tagged")))
  return "zip:" + os.path.join(folder, "faces.zip")


@pytest.fixture
def tags_smoke_config(tagged_faces, cache_dir):
  """configs/anime_tags.py:smoke pointed at the generated tagged faces."""
  from configs import anime_tags  # pylint: disable=g-import-not-at-top
  config = anime_tags.get_config("smoke")
  config.data.source = tagged_faces
  config.data.cache_dir = cache_dir
  return config


def pytest_unconfigure(config):
  """The xdist controller removes its workers' shared compilation cache once they are done."""
  if not hasattr(config, "workerinput"):
    shutil.rmtree(_shared_xla_cache(os.getpid()), ignore_errors=True)
