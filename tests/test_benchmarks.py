"""The benchmark scripts' own arithmetic (the analytic FLOP count, the profile table, table
cells) and the toy-lab benchmarks run end to end on a few steps."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position
import profile_step  # pylint: disable=g-import-not-at-top,wrong-import-position

_NHWC = ("NHWC", "HWIO", "NHWC")


def _flops(fn, *shapes):
  return common.matmul_flops(jax.make_jaxpr(fn)(*(jnp.zeros(s) for s in shapes)).jaxpr)


def test_matmul_flops_counts_multiply_adds_by_hand():
  # (8, 5) @ (5, 3): 8 * 3 outputs x 5 multiply-adds x 2.
  assert _flops(jnp.dot, (8, 5), (5, 3)) == 2 * 8 * 3 * 5
  # 3x3 SAME conv, 4 -> 6 features on 2 x 7 x 7: every output takes 3 * 3 * 4 multiply-adds.
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=_NHWC)
  assert _flops(conv, (2, 7, 7, 4), (3, 3, 4, 6)) == 2 * (2 * 7 * 7 * 6) * (3 * 3 * 4)
  # A scan's body counts once per iteration; elementwise work not at all.
  scanned = lambda x, w: jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=4)[0]
  assert _flops(scanned, (2, 3), (3, 3)) == 4 * 2 * 2 * 3 * 3


def test_strided_conv_gradients_count_their_real_taps():
  """A 4x4 stride-2 conv's input gradient is a conv of the x2-dilated output gradient: counted
  without the zeros, it costs what the forward conv does (up to border taps)."""
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                                   dimension_numbers=_NHWC)
  x, k = jnp.ones((2, 16, 16, 8)), jnp.ones((4, 4, 8, 16))
  forward = common.matmul_flops(jax.make_jaxpr(conv)(x, k).jaxpr)
  _, input_vjp = jax.vjp(lambda x: conv(x, k), x)
  input_grad = common.matmul_flops(jax.make_jaxpr(input_vjp)(conv(x, k)).jaxpr)
  _, kernel_vjp = jax.vjp(lambda k: conv(x, k), k)
  kernel_grad = common.matmul_flops(jax.make_jaxpr(kernel_vjp)(conv(x, k)).jaxpr)
  assert forward == 2 * (2 * 8 * 8 * 16) * (4 * 4 * 8)
  assert 0.8 * forward <= input_grad <= 1.1 * forward  # uncorrected: 4x
  assert 0.8 * forward <= kernel_grad <= 1.1 * forward


def test_profile_table_lists_the_step_s_work(tmp_path):
  f = jax.jit(lambda x: jnp.sin(x) @ x)
  x = jnp.ones((128, 128))
  f(x).block_until_ready()
  with jax.profiler.trace(str(tmp_path)):
    f(x).block_until_ready()
  paths = [os.path.join(r, n) for r, _, files in os.walk(tmp_path) for n in files
           if n.endswith(".xplane.pb")]
  table = profile_step.kernel_table(paths[0], iters=1, top=50)
  rows = [row for plane in table.values() for rows in plane["top"].values() for row in rows]
  assert rows and all(row["ms_per_iter"] >= 0 and 0 <= row["share"] <= 1 for row in rows)
  assert any("sine" in row["name"] or "dot" in row["name"] or "fusion" in row["name"]
             for row in rows), [row["name"] for row in rows]


def test_hlo_instructions_name_the_jax_operation_of_each_instruction():
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                                   dimension_numbers=_NHWC)
  text = jax.jit(conv).lower(jnp.ones((2, 8, 8, 3)), jnp.ones((4, 4, 3, 5))).compile().as_text()
  instructions = profile_step.hlo_instructions(text)
  convs = [v for v in instructions.values() if "conv_general_dilated" in v]
  assert convs and all("f32[2,4,4,5]" in v and "stride=2x2" in v for v in convs), instructions


def test_table_cells_and_files(tmp_path):
  assert common.spread([1.0, 3.0], 1) == "2.0 +/- 1.0 (min 1.0)"
  common.write_lines(["| a |", "|---|"], str(tmp_path / "t.md"))
  assert (tmp_path / "t.md").read_text() == "| a |\n|---|\n"
  common.write_lines(["x"], "")  # no path: nothing written, no error


def test_the_run_stamp_names_the_cpu_it_ran_on(tmp_path):
  """Tables record the CPU (XLA:CPU compiles for its ISA): model name, family and model, the
  widest vector ISA, read from the first processor of /proc/cpuinfo."""
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                     "model name\t: AMD EPYC 9654\nflags\t\t: fpu sse4_2 avx avx2 avx512f\n\n"
                     "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
  assert common.processor(str(cpuinfo)) == "AMD EPYC 9654 (family 25 model 17, AVX512F)"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx\n")
  assert common.processor(str(cpuinfo)) == "Some CPU (AVX2)"
  cpuinfo.write_text("processor\t: 0\nCPU implementer\t: 0x41\n")  # an ARM core
  assert common.processor(str(cpuinfo))  # the platform module's name, whatever it is
  assert common.processor(str(tmp_path / "missing"))
  stamp = common.run_stamp()
  assert f"{os.cpu_count()} CPU cores, {common.processor()}, JAX {jax.__version__}" in stamp


def test_config_overrides_keep_a_value_with_commas_whole():
  assert common.config_overrides(["penalty.use=cr", "cr_fake", "model.dtype=bfloat16"]) == [
      "penalty.use=cr,cr_fake", "model.dtype=bfloat16"]
  assert common.config_overrides([]) == []
  with pytest.raises(ValueError, match="an override is FIELD=VALUE, got 'cr'"):
    common.config_overrides(["cr", "penalty.use=r1"])


@pytest.mark.parametrize("script, args, columns", [
    ("latent_choice", ["--dims=2", "--dists=uniform"], 6),
    ("vae_baseline", ["--lrs=1e-3"], 6),
    ("energy_baseline", ["--searches=2"], 6),
    ("began_toy", ["--settings=1"], 7),
    ("rejection_toy", ["--tune=0,2", "--quantiles=0.5", "--gammas=0.5", "--mh_steps=2"], 9),
    ("text_lab", ["--estimators=reinforce", "--generators=autoregressive", "--pretrain_steps=2",
                  "--batch_size=8", "--steps=0,3", "--rewards=dense", "--d_l2=0.5",
                  "--discount=0.5", "--d_pretrain_steps=2", "--baselines=moving_average",
                  "--baseline_decays=0.7"], 13),
])
def test_toy_lab_benchmarks_write_their_tables(tmp_path, monkeypatch, script, args, columns):
  """Each toy-lab benchmark runs end to end on one seed for a few steps and writes a table
  whose rows have its columns."""
  module = __import__(script)
  out = tmp_path / "table.md"
  monkeypatch.setattr(sys, "argv", [script, "--seeds=1", "--steps=3", f"--out={out}", *args])
  module.main()
  rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
  assert len(rows) >= 2 and all(row.count("|") == columns + 1 for row in rows)
  if script == "rejection_toy":  # a row per D, tuning and correction, DRS's shift among them
    assert len(rows) == 1 + 2 * 2 * 4  # quantile, shift, MH from G, MH from data
    assert sum("gamma the 0.5 quantile of F" in row for row in rows) == 4
    assert sum("MH, 2 proposals, from data" in row for row in rows) == 4
  if script == "text_lab":  # the options reach the runs and the table says so
    text = out.read_text()
    assert "batch 8," in text and "0.5^(s - t)" in text and "--discount=0.5 " in text
    assert rows[1].startswith("| autoregressive | 2 | 2 | dense | 0.5 | - | - | 0 |")
    assert rows[2].startswith("| autoregressive | 2 | 2 | dense | 0.5 | moving average 0.7 | "
                              "reinforce | 3 |")


def test_grouped_conv_benchmark_times_both_forms(tmp_path, monkeypatch):
  import grouped_conv  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(grouped_conv, "SHAPES", ((2, 4, 8, 2),))
  out = tmp_path / "table.md"
  monkeypatch.setattr(sys, "argv", ["grouped_conv", f"--out={out}"])
  grouped_conv.main()
  rows = [line for line in out.read_text().splitlines() if line.startswith("| 4x4x8, 2 |")]
  assert [row.split(" | ")[1] for row in rows] == ["lax", "taps"]
  assert all(float(cell) > 0 for row in rows for cell in row.strip(" |").split(" | ")[2:])


def test_toy_lab_runs_only_the_rows_asked_for(tmp_path, monkeypatch):
  """benchmarks/toy_lab.py --only: the regularisers whose names contain a piece, on the ring
  and the grid, without the claims (--theory_seeds=0); a piece matching none is refused."""
  import toy_lab  # pylint: disable=g-import-not-at-top
  out = tmp_path / "table.md"
  argv = ["toy_lab", "--seeds=1", "--grid_seeds=1", "--ring_steps=2", "--grid_steps=2",
          "--theory_seeds=0", f"--out={out}"]
  monkeypatch.setattr(sys, "argv", argv + ["--only=R3GAN"])
  toy_lab.main()
  rows = [line for line in out.read_text().splitlines() if line.startswith("| RpGAN")]
  assert len(rows) == 2 and all("(R3GAN's objective)" in row for row in rows)
  assert "claims" not in out.read_text() and "--only=R3GAN`" in out.read_text()
  monkeypatch.setattr(sys, "argv", argv + ["--only=R4GAN"])
  with pytest.raises(SystemExit, match="--only='R4GAN' matches no regulariser"):
    toy_lab.main()


@pytest.mark.parametrize("bad, message", [
    ("--pretrain_steps=0,-1", "pretrain_steps must be >= 0, got -1"),
    ("--estimators=reinforce,gumbel", "unknown estimator 'gumbel'"),
    ("--generators=autoregressive,rnn", "unknown generator 'rnn'"),
    ("--steps=2,-3", r"--steps must be >= 0, got 2,-3"),
    ("--rewards=sequence,per_token", "unknown rewards 'per_token'"),
    ("--d_l2=0,-1", "d_l2 must be >= 0, got -1"),
    ("--d_pretrain_steps=0,-2", "d_pretrain_steps must be >= 0, got -2"),
    ("--baselines=batch,critic", "unknown baseline 'critic'"),
    ("--baseline_decays=0.9,1", r"baseline_decay must be in \[0, 1\), got 1.0"),
])
def test_text_lab_benchmark_refuses_a_bad_choice_before_training(monkeypatch, bad, message):
  """A bad value anywhere in a list stops the benchmark before its first run (the table is
  written only at the end, so a late failure would lose the rows before it)."""
  import text_lab  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(text_lab.text_lab, "train_seeds", lambda *a, **k: pytest.fail("trained"))
  monkeypatch.setattr(sys, "argv", ["text_lab", "--seeds=1", bad])
  with pytest.raises(ValueError, match=message):
    text_lab.main()


@pytest.mark.parametrize("lr", [0.0, 2e-4])
def test_weight_drift_measures_from_the_run_s_own_initialisation(tmp_path, smoke_config, lr):
  """The initial kernels weight_drift rebuilds from the saved config are the run's own: at
  learning rate 0 every checkpoint is exactly where it started; trained, the kernels move
  further at each checkpoint."""
  import weight_drift  # pylint: disable=g-import-not-at-top
  from gan_jax import train  # pylint: disable=g-import-not-at-top
  smoke_config.optim.g_lr = smoke_config.optim.d_lr = lr
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(smoke_config, workdir)
  _, rows = weight_drift.drift(workdir, "g", ("", "UpConv"))
  assert [(step, layers) for step, layers, _ in rows] == [
      (step, layers) for step in ("Gaussian", 0, 2, 4) for layers in ("", "UpConv")]
  moved = [summary["moved"] for _, layers, summary in rows[2:] if not layers]
  if lr:
    assert 0 == moved[0] < moved[1] < moved[2]
  else:
    assert moved == [0, 0, 0]


def test_weight_drift_reads_kernels_with_several_outputs_only():
  """Kernels only (no biases, no embeddings), and none with a single output (no filters to
  compare); the summary of kernels against themselves has moved 0."""
  import weight_drift  # pylint: disable=g-import-not-at-top
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 4)))
  params = {"Conv_0": {"kernel": q.reshape(2, 1, 4, 4), "bias": np.ones(4)},
            "Embed_0": {"embedding": np.ones((3, 4))},
            "Dense_0": {"kernel": np.ones((4, 1))}}
  kernels = weight_drift.kernels(params)
  assert list(kernels) == ["Conv_0/kernel"]
  summary = weight_drift.summary(kernels, kernels)
  assert summary["moved"] == 0 and summary["coherence"] < 1e-6 and summary["penalty"] < 1e-10
  both = {"a/Conv_0": np.eye(2), "a/Dense_0": np.ones((2, 2))}
  assert list(weight_drift.group(both, "Conv")) == ["a/Conv_0"]
  assert list(weight_drift.group(both, "")) == ["a/Conv_0", "a/Dense_0"]
  with pytest.raises(ValueError, match="no kernel path matches 'Attention'; the paths: "
                     "a/Conv_0, a/Dense_0"):
    weight_drift.group(both, "Attention")


def test_mh_images_reports_plain_and_corrected_samples_after_each_tuning(tmp_path, smoke_config,
                                                                        monkeypatch):
  """benchmarks/mh_images.py: the plain samples, then every tuning with every MH length,
  each row what `evaluate --mh_steps=K --mh_tune=N` reports, written to a scratch folder;
  the reference images are featurised, and the tuning images decoded, once for all rows."""
  import mh_images  # pylint: disable=g-import-not-at-top
  from gan_jax import evaluate, train  # pylint: disable=g-import-not-at-top
  from gan_jax.metrics import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  smoke_config.optim.d_lr = 0.02  # a D whose logits spread within a few steps
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(smoke_config, workdir)
  featurised, decoded = [], []
  compute, tuning_images = evaluator_lib.FeatureNetworks.compute, evaluate.tuning_images
  monkeypatch.setattr(evaluator_lib.FeatureNetworks, "compute", lambda self, name, images: (
      featurised.append(len(images)) or compute(self, name, images)))
  monkeypatch.setattr(evaluate, "tuning_images", lambda config: (
      decoded.append(1) or tuning_images(config)))
  _, tuning, rows = mh_images.measure(workdir, "latest", [3], [0, 2, 1], "fd_anime", 32, 20,
                                      str(tmp_path / "scratch"))
  assert [(tune, k) for tune, k, _, _ in rows] == [(0, 0), (3, 2), (3, 1)]
  assert sorted(featurised) == [20, 32, 32, 32] and decoded == [1]  # references once
  assert rows[0][3] is None and all(0 < taken <= 1 for _, _, _, taken in rows[1:])
  assert tuning.endswith(" training images outside the reference set")
  assert not os.path.exists(os.path.join(workdir, "eval"))  # the run's own reports untouched
  (tuned,) = evaluate.evaluate_run(workdir, "latest", dict(
      metrics="fd_anime", num_samples=32, num_real=20, mh_steps=2, mh_tune=3))
  assert tuned["metrics"]["fd_anime"]["values"] == pytest.approx(
      rows[1][2]["fd_anime"]["values"], rel=1e-6)


@pytest.mark.mesh_devices(1)
def test_limited_data_trains_on_few_images_and_scores_against_other_faces(
    tmp_path, face_data, tagged_faces, monkeypatch):
  """benchmarks/limited_data.py: an arm trains on the first --max_images images of the
  training source with its augmentation (none here), and its checkpoints are
  scored against the whole reference source, not the training images."""
  import limited_data  # pylint: disable=g-import-not-at-top
  from gan_jax import evaluate  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  scored_against, run_evaluator = [], evaluate.RunEvaluator
  monkeypatch.setattr(evaluate, "RunEvaluator", lambda config, *a, **k: (
      scored_against.append((config.data.source, config.data.max_images))
      or run_evaluator(config, *a, **k)))
  out = tmp_path / "table.md"
  monkeypatch.setattr(sys, "argv", [
      "limited_data", f"--train_source={face_data}", f"--reference_source={tagged_faces}",
      "--max_images=16", "--num_steps=2", "--every=2", "--arms=none", "--image_size=16",
      "--width=4", "--batch_size=8", "--num_samples=16", "--num_real=20",
      "--metrics=fd_anime", "--values=fd_anime", f"--root={tmp_path / 'runs'}", f"--out={out}"])
  limited_data.main()
  (row,) = [line for line in out.read_text().splitlines() if line.startswith("| none")]
  assert row.startswith("| none | 2 | fd_anime ") and row.endswith("|  |")  # no ADA p
  assert scored_against == [(tagged_faces, 0)]
  from gan_jax.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  saved = Checkpointer(str(tmp_path / "runs" / "none" / "checkpoints")).restore_config(2)
  assert saved["data"]["max_images"] == 16
  assert saved["augment"]["policy"] == ""
  monkeypatch.setattr(sys, "argv", ["limited_data", "--train_source=x", "--reference_source=y",
                                    "--arms=none,adda"])
  with pytest.raises(SystemExit, match="unknown arm 'adda'; choose from: none, diffaugment, ada"):
    limited_data.main()


def test_augment_cost_times_each_policy(tmp_path, monkeypatch):
  """benchmarks/augment_cost.py: a row per policy with its forward and gradient times."""
  import augment_cost  # pylint: disable=g-import-not-at-top
  out = tmp_path / "cost.md"
  monkeypatch.setattr(sys, "argv", ["augment_cost", "--policies=flip;ada", "--batch=2",
                                    "--size=8", "--repeats=1", f"--out={out}"])
  augment_cost.main()
  rows = [line.split("|")[1:4] for line in out.read_text().splitlines()
          if line.startswith("| flip") or line.startswith("| ada")]
  assert [row[0].strip() for row in rows] == ["flip", "ada"]
  assert all(float(cell) > 0 for row in rows for cell in row[1:])
