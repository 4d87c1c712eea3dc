"""Orbax checkpoints: exact round trip, retention, and partial saves."""

import os
import shutil

import jax

from gan_jax.checkpoint import Checkpointer
from test_step import same, tiny


def abstract_of(state):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def test_round_trip_is_bit_exact(tmp_path):
  step, state, images = tiny()
  state, _ = jax.jit(step)(state, images)  # non-trivial optimizer state and EMA
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(1, state, {"loss": {"name": "hinge"}, "betas": [0.5, 0.999]})
  checkpointer.wait()
  restored, config, restored_step = Checkpointer(str(tmp_path)).restore(abstract_of(state))
  assert restored_step == 1
  assert config == {"loss": {"name": "hinge"}, "betas": [0.5, 0.999]}
  assert type(restored) is type(state)
  assert same(restored, state)
  assert jax.tree.structure(restored) == jax.tree.structure(state)


def test_keeps_the_newest_k(tmp_path):
  _, state, _ = tiny()
  checkpointer = Checkpointer(str(tmp_path), keep=2)
  for step in range(1, 6):
    checkpointer.save(step, state, {})
  checkpointer.wait()
  assert checkpointer.all_steps() == [4, 5]
  checkpointer.close()


def test_a_half_written_checkpoint_is_ignored_and_cleaned_up(tmp_path):
  """What a run killed mid-save leaves behind: a temporary directory, never a step."""
  _, state, _ = tiny()
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(5, state, {})
  checkpointer.close()
  partial = tmp_path / "10.orbax-checkpoint-tmp"
  shutil.copytree(tmp_path / "5", partial)
  shutil.rmtree(partial / "state")  # torn: the state never finished writing
  reopened = Checkpointer(str(tmp_path))
  assert reopened.latest_step() == 5
  restored, _, step = reopened.restore(abstract_of(state))
  assert step == 5 and same(restored, state)
  reopened.close()
  assert not partial.exists()  # removed on start, as orbax's cleanup_tmp_directories promises
  assert sorted(os.listdir(tmp_path)) == ["5"]


def test_mismatches_name_the_arrays_that_differ(tmp_path):
  _, state, _ = tiny()
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(1, state, {})
  checkpointer.wait()
  assert checkpointer.mismatches(abstract_of(state)) == []
  _, wider, _ = tiny(model__d_width=16)
  lines = checkpointer.mismatches(abstract_of(wider))
  assert "d_params/Conv_0/kernel: checkpoint ((4, 4, 3, 8), 'float32') vs now ((4, 4, 3, 16), 'float32')" in lines
  _, plain, _ = tiny(model__d_norm="none")  # no BatchNorm statistics in D
  assert any(line.endswith("only in the checkpoint") for line in
             checkpointer.mismatches(abstract_of(plain)))
  checkpointer.close()
