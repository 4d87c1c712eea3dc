"""FID Inception-v3: equal to pytorch-fid's network, torch-free weight loading, weight resolution."""

import hashlib
import math
import os
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from pytorch_fid import inception as fid_inception

from gan_jax.errors import ConfigError
from gan_jax.metrics import inception

# Tolerance on features relative to their scale (float32 through ~95 layers).
RELATIVE_TOLERANCE = 1e-4


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
  """Random He-scaled convolutions, random BN affine parameters and a random fc, in place."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.Conv2d):
        fan_in = module.weight[0].numel()
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * math.sqrt(2 / fan_in))
      elif isinstance(module, torch.nn.BatchNorm2d):
        module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
        # Mostly positive BN outputs: ReLU cuts ~1/6 of them. With zero-centred ones
        # this random network is chaotic (float rounding grows ~1000x by the output).
        module.bias.copy_(1 + 0.2 * torch.randn(module.bias.shape, generator=gen))
      elif isinstance(module, torch.nn.Linear):
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / math.sqrt(2048))
        module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))


def _to_torch(images: np.ndarray) -> torch.Tensor:
  """uint8 NHWC -> float NCHW in [0, 1], what pytorch-fid's data loader feeds its network."""
  return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def _torch_features(wrapper, fc, images: np.ndarray):
  """(pool, logits) of pytorch-fid's InceptionV3 wrapper (block 3) and the same model's fc."""
  with torch.no_grad():
    pool = wrapper(_to_torch(images))[0].flatten(1)
    return pool.numpy(), fc(pool).numpy()


@pytest.fixture(scope="module")
def torch_fid(tmp_path_factory):
  """pytorch-fid's FID network with random weights, and its state dict saved in both torch formats.

  `InceptionV3(use_fid_inception=True)` is built by pytorch-fid itself; only
  its download is replaced: the "downloaded" state dict is the freshly built
  network's own (so the strict load checks the keys). Then the weights are
  randomised and the BatchNorm running statistics set from a batch of images
  (train mode), so activations keep a sane scale through the whole network.
  """
  built = []
  original_builder = fid_inception._inception_v3

  def capture(*args, **kwargs):
    built.append(original_builder(*args, **kwargs))
    return built[-1]

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(fid_inception, "_inception_v3", capture)
    patch.setattr(fid_inception, "load_state_dict_from_url",
                  lambda *args, **kwargs: built[-1].state_dict())
    wrapper = fid_inception.InceptionV3([3], resize_input=True, normalize_input=True,
                                        use_fid_inception=True)
  (net,) = built
  _randomise(net)
  rng = np.random.default_rng(123)
  for module in net.modules():
    if isinstance(module, torch.nn.BatchNorm2d):
      module.reset_running_stats()
      module.momentum = None  # running statistics = the calibration batch's
  calibration = [torch.nn.functional.interpolate(
      _to_torch(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)), size=(299, 299),
      mode="bilinear", align_corners=False) for size in (64, 320)]   # like the test images
  wrapper.train()
  with torch.no_grad():
    wrapper(torch.cat(calibration))
  wrapper.eval()
  net.eval()

  state = net.state_dict()
  folder = tmp_path_factory.mktemp("inception")
  files = {}
  for name, zip_format in (("zip", True), ("legacy", False)):
    files[name] = str(folder / f"{name}.pth")
    torch.save(state, files[name], _use_new_zipfile_serialization=zip_format)
  return dict(wrapper=wrapper, fc=net.fc, state=state, files=files)


def test_torch_free_loader_reads_both_formats_exactly(torch_fid):
  """Both serialisation formats give exactly the torch state dict, mapped to the Flax layouts."""
  assert zipfile.is_zipfile(torch_fid["files"]["zip"])
  assert not zipfile.is_zipfile(torch_fid["files"]["legacy"])
  state = {k: v.numpy() for k, v in torch_fid["state"].items()}
  loaded = {}
  for name, path in torch_fid["files"].items():
    raw = inception.read_torch_state_dict(path)
    assert raw.keys() == state.keys()
    for key, value in state.items():
      assert raw[key].dtype == value.dtype and raw[key].shape == value.shape, key
      np.testing.assert_array_equal(raw[key], value, err_msg=key)
    loaded[name] = inception.load_params(path)
  variables = loaded["zip"]
  jax.tree_util.tree_map(np.testing.assert_array_equal, variables, loaded["legacy"])
  conv = variables["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"]
  np.testing.assert_array_equal(conv, state["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
  assert conv.shape == (1, 7, 128, 128)
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"], state["fc.weight"].T)
  np.testing.assert_array_equal(variables["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]["var"],
                                state["Mixed_7c.branch_pool.bn.running_var"])
  count = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
  assert sum(x.size for x in jax.tree_util.tree_leaves(variables)) == count


def _relative_errors(ours: np.ndarray, reference: np.ndarray):
  """(max |a - b| / max |b|, max over elements of |a - b| / (|b| + rms(b))).

  The second is a relative error for every element of at least typical size,
  and an absolute one (in units of the typical size) for elements near zero.
  """
  diff = np.abs(ours - reference)
  scale = np.sqrt(np.mean(reference**2))
  return diff.max() / np.abs(reference).max(), (diff / (np.abs(reference) + scale)).max()


@pytest.mark.parametrize("size,count", [(64, 3), (320, 2)])
def test_features_equal_pytorch_fid(torch_fid, size, count):
  """Pool features and logits equal pytorch-fid's, upsampling (64) and downsampling (320), both formats."""
  images = np.random.default_rng(size).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
  pool_ref, logits_ref = _torch_features(torch_fid["wrapper"], torch_fid["fc"], images)
  # Not degenerate: finite, a sane scale, and different for different images.
  assert np.isfinite(pool_ref).all() and np.isfinite(logits_ref).all()
  print(f"pool mean {pool_ref.mean():.3g}, > 0: {(pool_ref > 0).mean():.3g}, std over images "
        f"{pool_ref.std(axis=0).mean():.3g}; logits |mean| {np.abs(logits_ref).mean():.3g}, std over "
        f"images {logits_ref.std(axis=0).mean():.3g}")
  assert 0.05 < pool_ref.mean() < 20 and (pool_ref > 0).mean() > 0.5
  assert pool_ref.std(axis=0).mean() > 0.05 * pool_ref.mean()
  assert logits_ref.std(axis=0).mean() > 0.05 * np.abs(logits_ref).mean()
  for name, path in torch_fid["files"].items():
    features = inception.make_feature_fn(inception.load_params(path), batch_size=2)(images)
    assert features["pool"].shape == (count, 2048) and features["pool"].dtype == np.float32
    assert features["logits"].shape == (count, 1008) and features["logits"].dtype == np.float32
    for key, reference in (("pool", pool_ref), ("logits", logits_ref)):
      global_error, element_error = _relative_errors(features[key], reference)
      print(f"{name} {size}x{size} {key}: max|a-b|/max|b| = {global_error:.2e}, "
            f"per element {element_error:.2e}")
      assert global_error < RELATIVE_TOLERANCE, (name, size, key, global_error)
      assert element_error < RELATIVE_TOLERANCE, (name, size, key, element_error)


def test_preprocess_matches_torch_and_accepts_floats():
  """Resize as torch's bilinear (align_corners=False); floats in [-1, 1] equal the uint8 path."""
  rng = np.random.default_rng(0)
  for size in (64, 320, 299):
    images = rng.integers(0, 256, (2, size, size + 5, 3), dtype=np.uint8)
    ours = np.asarray(inception.preprocess(jnp.asarray(images)))
    reference = torch.nn.functional.interpolate(
        _to_torch(images), size=(299, 299), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(ours, (2 * reference - 1).permute(0, 2, 3, 1).numpy(), atol=1e-6)
    floats = images.astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(np.asarray(inception.preprocess(jnp.asarray(floats))), ours,
                               atol=1e-6)
  features = inception.make_feature_fn({}, batch_size=2)
  with pytest.raises(ValueError, match=r"\[-1, 1\]"):
    features(np.full((1, 8, 8, 3), 255.0, np.float32))
  empty = features(np.zeros((0, 8, 8, 3), np.uint8))
  assert empty["pool"].shape == (0, 2048) and empty["logits"].shape == (0, 1008)


def test_loader_handles_views_and_refuses_other_dtypes(tmp_path):
  """Shared storages, offsets and strides are rebuilt; float64 and non-tensor entries are refused."""
  base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
  state = {"a": base, "b": base.t(), "c": base[1:, 1:], "n": torch.tensor(5, dtype=torch.int64)}
  for zip_format in (True, False):
    path = str(tmp_path / f"views{zip_format}.pth")
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    loaded = inception.read_torch_state_dict(path)
    for key, value in state.items():
      np.testing.assert_array_equal(loaded[key], value.numpy())
    torch.save({"w": torch.zeros(3, dtype=torch.float64)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ConfigError, match="DoubleStorage.*float32"):
      inception.read_torch_state_dict(path)
    torch.save({"w": [1, 2]}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ConfigError, match="not a tensor"):
      inception.read_torch_state_dict(path)


def test_wrong_state_dict_is_a_clear_error(torch_fid):
  """A missing, misshapen or unexpected entry names the entry."""
  state = {k: v.numpy() for k, v in torch_fid["state"].items()}
  del state["Mixed_5b.branch1x1.conv.weight"]
  state["fc.bias"] = np.zeros(1000, np.float32)
  state["AuxLogits.fc.bias"] = np.zeros(1008, np.float32)
  with pytest.raises(ConfigError) as error:
    inception.state_dict_to_variables(state, source="x.pth")
  for text in ("missing", "Mixed_5b.branch1x1.conv.weight", "wrong shape", "fc.bias: (1000,)",
               "unexpected", "AuxLogits.fc.bias", "x.pth"):
    assert text in str(error.value)


def test_pickle_loader_refuses_unexpected_globals(tmp_path):
  """A pickle calling os.system is refused before anything runs, in both formats."""
  marker = tmp_path / "pwned"
  evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
  legacy = tmp_path / "evil_legacy.pth"
  with open(legacy, "wb") as f:
    for value in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
      pickle.dump(value, f, protocol=2)
    f.write(evil)
  archive = tmp_path / "evil_zip.pth"
  with zipfile.ZipFile(archive, "w") as f:
    f.writestr("evil_zip/data.pkl", evil)
  for path in (legacy, archive):
    with pytest.raises(ConfigError, match=r"refusing to load it.*global os\.system"):
      inception.read_torch_state_dict(str(path))
  assert not marker.exists()
  garbage = tmp_path / "garbage.pth"
  garbage.write_bytes(b"not a checkpoint at all")
  with pytest.raises(ConfigError, match="garbage.pth"):
    inception.load_params(str(garbage))


# --- Finding the weights -------------------------------------------------------


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
  """No env var, an empty cache, and a download that records its calls and fails."""
  monkeypatch.delenv(inception.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  calls = []

  def failing_download(url, out):
    calls.append(url)
    raise OSError("network unreachable")

  monkeypatch.setattr(inception, "download", failing_download)
  return calls


def test_missing_weights_error_says_how_to_provide_them(no_weights, tmp_path):
  """Nothing anywhere and no network: ConfigError naming file, URL, flag and env var; no leftovers."""
  with pytest.raises(ConfigError) as error:
    inception.load_inception()
  message = str(error.value)
  for text in (inception.WEIGHTS_FILE, inception.WEIGHTS_URL,
               f"--config.eval.inception_path=/path/to/{inception.WEIGHTS_FILE}",
               "GAN_JAX_INCEPTION", "network unreachable"):
    assert text in message
  assert no_weights == [inception.WEIGHTS_URL]
  assert os.listdir(tmp_path / "cache" / "gan_jax") == []


def test_explicit_missing_path_is_an_error_without_download(no_weights, tmp_path, monkeypatch):
  """A given path (flag or env var) that does not exist is reported as such; nothing is downloaded."""
  missing = str(tmp_path / "nowhere" / "weights.pth")
  with pytest.raises(ConfigError, match=f"inception_path={missing}"):
    inception.resolve_weights(missing)
  monkeypatch.setenv(inception.ENV_VAR, missing)
  with pytest.raises(ConfigError, match=f"GAN_JAX_INCEPTION={missing}"):
    inception.resolve_weights()
  assert no_weights == []


def test_resolution_order(no_weights, tmp_path, monkeypatch):
  """Explicit path, then env var, then the cache file; none of them downloads."""
  cached = tmp_path / "cache" / "gan_jax" / inception.WEIGHTS_FILE
  assert inception.cache_path() == str(cached)
  cached.parent.mkdir(parents=True)
  cached.write_bytes(b"cached")
  assert inception.resolve_weights() == str(cached)
  from_env = tmp_path / "env.pth"
  from_env.write_bytes(b"env")
  monkeypatch.setenv(inception.ENV_VAR, str(from_env))
  assert inception.resolve_weights() == str(from_env)
  explicit = tmp_path / "explicit.pth"
  explicit.write_bytes(b"explicit")
  assert inception.resolve_weights(str(explicit)) == str(explicit)
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert inception.cache_path() == str(tmp_path / "home" / ".cache" / "gan_jax"
                                       / inception.WEIGHTS_FILE)
  assert no_weights == []


def test_download_into_cache_checks_sha256(no_weights, tmp_path, monkeypatch):
  """A download lands in the cache once; one with the wrong sha256 is an error and leaves nothing."""
  payload = b"the weights"
  monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(payload).hexdigest()[:8])
  calls = []

  def fake_download(url, out):
    calls.append(url)
    out.write(content)

  monkeypatch.setattr(inception, "download", fake_download)
  folder = tmp_path / "cache" / "gan_jax"
  content = b"tampered weights"
  with pytest.raises(ConfigError, match="sha256"):
    inception.resolve_weights()
  assert os.listdir(folder) == []
  content = payload
  path = inception.resolve_weights()
  assert path == str(folder / inception.WEIGHTS_FILE)
  assert os.listdir(folder) == [inception.WEIGHTS_FILE]
  with open(path, "rb") as f:
    assert f.read() == payload
  assert inception.resolve_weights() == path
  assert calls == [inception.WEIGHTS_URL] * 2
