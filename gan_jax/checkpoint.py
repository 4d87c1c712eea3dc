"""Checkpoints of the full training state, with Orbax (the only module importing it).

A checkpoint directory holds one sub-directory per saved step with two items:
`state` (the whole TrainState pytree) and `config` (the run's config as JSON).
Saves are asynchronous: the arrays are copied off the devices, then written in
the background while training continues. A step directory becomes visible
only once completely written (Orbax writes to a temporary name and renames
it), so a run killed mid-save resumes from the last complete checkpoint;
leftover temporary directories are removed on the next start.
"""

import json
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

import jax
import orbax.checkpoint as ocp

PyTree = Any


def _shapes(tree: PyTree) -> Dict[str, Tuple[Tuple[int, ...], str]]:
  """{'a/b/c': (shape, dtype)} of every array-like leaf, whatever the container types."""
  return {jax.tree_util.keystr(path, simple=True, separator="/"): (tuple(leaf.shape),
                                                                   str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


class Checkpointer:
  """Saves and restores (state, config) under `directory`, keeping the newest `keep`."""

  def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep if keep > 0 else None,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save,
    )
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "config": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> Optional[int]:
    """The newest completely written step, or None."""
    return self._manager.latest_step()

  def all_steps(self):
    """Every completely written step, oldest first."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: PyTree, config: Dict[str, Any]) -> bool:
    """Starts saving `state` and `config` as `step`; returns once the arrays are off the devices."""
    return self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                config=ocp.args.JsonSave(config)),
        force=True)

  def mismatches(self, abstract: PyTree, step: Optional[int] = None) -> List[str]:
    """How the arrays saved at `step` (default: latest) differ from `abstract`'s, one line each."""
    step = self.latest_step() if step is None else step
    saved = _shapes(self._manager.item_metadata(step)["state"])
    wanted = _shapes(abstract)
    lines = [f"{k}: checkpoint {saved[k]} vs now {wanted[k]}"
             for k in sorted(saved.keys() & wanted.keys()) if saved[k] != wanted[k]]
    lines += [f"{k}: only in the checkpoint" for k in sorted(saved.keys() - wanted.keys())]
    lines += [f"{k}: not in the checkpoint" for k in sorted(wanted.keys() - saved.keys())]
    return lines

  def restore(self, abstract: PyTree,
              step: Optional[int] = None) -> Tuple[PyTree, Dict[str, Any], int]:
    """(state, config, step) of `step` (default: the latest), laid out like `abstract`.

    `abstract` has jax.ShapeDtypeStruct leaves whose `sharding` says where each
    restored array goes.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                config=ocp.args.JsonRestore()))
    return restored["state"], restored["config"], step

  def restore_config(self, step: Optional[int] = None) -> Dict[str, Any]:
    """The config saved with `step` (default: the latest)."""
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return restored["config"]

  def wait(self) -> None:
    """Blocks until every started save is completely written."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending saves and releases Orbax's resources."""
    self._manager.close()


BEST_DIR = "checkpoint_best"  # under the workdir: the best checkpoint by config.eval.best


class BestCheckpoint:
  """Keeps the one checkpoint with the best value of an eval metric (workdir/checkpoint_best).

  A record `checkpoint_best.json` beside it holds the metric, value and step.
  A run resumed from before its best step forgets that best (the resumed run
  recomputes the same steps exactly and finds it again). In a multi-process run
  every process offers alike (the checkpoint is saved by all of them) and only the
  `primary` one (process 0) deletes a stale best and writes the record.
  """

  def __init__(self, workdir: str, metric: str, resumed_step: int = 0, primary: bool = True):
    self.directory = os.path.join(workdir, BEST_DIR)
    self.metric = metric
    self._record_path = os.path.join(workdir, BEST_DIR + ".json")
    self.value: Optional[float] = None
    self.step: Optional[int] = None
    self._checkpointer: Optional[Checkpointer] = None
    self.primary = primary
    record = {}
    if os.path.exists(self._record_path):
      with open(self._record_path) as f:
        record = json.load(f)
    if record.get("metric") == metric and record.get("step", 0) <= resumed_step:
      self.value, self.step = record["value"], record["step"]
    elif os.path.isdir(self.directory) and primary:
      shutil.rmtree(self.directory)  # another metric's best, or one past the resumed step

  def offer(self, step: int, value: float, better: bool, state: PyTree,
            config: Dict[str, Any]) -> bool:
    """Saves `state` as the new best if `better` (value beats the current best); returns it."""
    if not better:
      return False
    if self._checkpointer is None:
      self._checkpointer = Checkpointer(self.directory, keep=1, async_save=False)
    self._checkpointer.save(step, state, config)
    self._checkpointer.wait()
    self.value, self.step = float(value), step
    if not self.primary:
      return True
    tmp = self._record_path + ".tmp"
    with open(tmp, "w") as f:
      json.dump({"metric": self.metric, "value": self.value, "step": step}, f)
    os.replace(tmp, self._record_path)
    return True

  def close(self) -> None:
    """Releases Orbax's resources."""
    if self._checkpointer is not None:
      self._checkpointer.close()


def parse_init_from(text: str) -> Tuple[str, Optional[str]]:
  """'WORKDIR[@STEP|@best]' -> (checkpoint directory, step or None for the latest)."""
  workdir, _, step = text.partition("@")
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if step == "best":
    return os.path.join(workdir, BEST_DIR), None
  if step and not step.isdigit():
    raise ValueError(f"checkpoint.init_from={text!r}: expected WORKDIR, WORKDIR@STEP or "
                     "WORKDIR@best")
  return os.path.join(workdir, "checkpoints"), step or None
