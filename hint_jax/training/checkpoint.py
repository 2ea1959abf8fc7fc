"""Orbax checkpoints of the TrainState: periodic async atomic saves, keep-N, checked restores."""
import dataclasses
import errno
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import traverse_util

from hint_jax import types
from hint_jax.training import signature as signature_lib

FORMAT_VERSION = 1
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """When and how checkpoints are written.

  Attributes:
    period: save every `period` steps (the final step is always saved); 0 saves only at the end.
    keep: number of most recent checkpoints kept (None: all).
    async_save: write in a background thread while training continues.
  """
  period: int = 1000
  keep: int | None = 3
  async_save: bool = True

  def __post_init__(self):
    if self.period < 0:
      raise ValueError(f"CheckpointConfig.period must be >= 0, got {self.period}")
    if self.keep is not None and self.keep < 1:
      raise ValueError(f"CheckpointConfig.keep must be >= 1 or None, got {self.keep}")


class CheckpointMismatchError(ValueError):
  """A checkpoint was written by a run whose model or optimizer differs from this one."""


class CorruptCheckpointError(RuntimeError):
  """A checkpoint step exists but cannot be read back (truncated, half-written, unparsable)."""


def _key(entry: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def _shape_tree(tree: types.PyTree) -> dict[str, tuple[int, ...]]:
  """{'a/0/b': shape} for every array leaf (dict, tuple and attribute keys alike)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(_key(k) for k in p): tuple(getattr(x, "shape", ())) for p, x in leaves}


def _handlers() -> dict[str, Any]:
  return {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}


class Checkpointer:
  """Saves and restores `{'state': TrainState, 'meta': json}` under `directory`.

  `meta` holds `signature` (a string describing the model and optimizer config; restoring under
  a different signature is refused), the data position (`data_step` batches consumed,
  `data_examples` examples at `global_batch_size`) and anything the caller adds.
  """

  def __init__(self, directory: epath.PathLike, cfg: CheckpointConfig, signature: str):
    self.directory = epath.Path(directory)
    self.signature = signature
    options = ocp.CheckpointManagerOptions(
        max_to_keep=cfg.keep, enable_async_checkpointing=cfg.async_save, create=True)
    self._mgr = ocp.CheckpointManager(self.directory, options=options,
                                      item_handlers=_handlers())

  def latest_step(self) -> int | None:
    return self._mgr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mgr.all_steps())

  def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> None:
    """Starts an (async) atomic save; a half-written step never becomes `latest_step`."""
    meta = {**meta, "signature": self.signature, "version": FORMAT_VERSION}
    try:  # also waits for the previous async save, whose write error surfaces here
      self._mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)), force=True)
    except (OSError, ValueError) as e:
      error = self._write_error(e)
      if error is None:
        raise
      raise error from e

  def _write_error(self, e: Exception) -> OSError | None:
    """The write error (disk full, read-only, ...) naming the newest complete checkpoint.

    tensorstore reports failed array writes as ValueError('RESOURCE_EXHAUSTED: ... No space
    left on device [os_error_code=28]'); for any other ValueError this returns None.
    """
    if isinstance(e, ValueError) and "os_error_code" not in str(e):
      return None
    self._mgr.reload()
    code = re.search(r"os_error_code='?(\d+)", str(e))
    code = int(code.group(1)) if code else getattr(e, "errno", None) or errno.EIO
    detail = getattr(e, "filename", None) or " ".join(str(e).split())[:200]
    return OSError(code, f"{os.strerror(code)} while writing a checkpoint under "
                   f"{self.directory} ({detail}); newest complete checkpoint: "
                   f"step {self._mgr.latest_step()}")

  def read_meta(self, step: int) -> dict[str, Any]:
    return self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
    """Restores step `step` into `abstract_state` (ShapeDtypeStructs carrying shardings).

    Raises:
      CheckpointMismatchError: the signature or any array shape differs from this run's.
      CorruptCheckpointError: the step's files are missing, truncated or unparsable.
    """
    where = self.directory / str(step)
    try:
      meta = self.read_meta(step)
      saved = _shape_tree(self._mgr.item_metadata(step)["state"])
    except Exception as e:  # any read failure means the files are damaged
      raise CorruptCheckpointError(f"checkpoint {where} is unreadable: {type(e).__name__}: "
                                   f"{' '.join(str(e).split())[:300]}") from e
    if not signature_lib.compatible(meta.get("signature"), self.signature):
      raise CheckpointMismatchError(
          f"checkpoint {where} was written by a different config:\n  checkpoint: "
          f"{meta.get('signature')}\n  this run:   {self.signature}\n"
          "use a fresh model directory or the original config")
    if not saved:
      raise CorruptCheckpointError(f"checkpoint {where} is unreadable: no array metadata")
    wanted = _shape_tree(abstract_state)
    diff = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
    if diff:
      detail = ", ".join(f"{k}: saved {saved.get(k)} vs {wanted.get(k)}" for k in diff[:5])
      raise CheckpointMismatchError(f"checkpoint {where} does not match this run's state "
                                    f"({len(diff)} arrays differ): {detail}")
    try:
      out = self._mgr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    except Exception as e:  # the arrays themselves are unreadable
      raise CorruptCheckpointError(f"checkpoint {where} is unreadable: {type(e).__name__}: "
                                   f"{' '.join(str(e).split())[:300]}") from e
    return out["state"], out["meta"]

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict[str, Any]] | None:
    """(step, state, meta) of the newest readable checkpoint; None when there is none.

    A corrupted newer step is reported (logged as a warning) and moved aside to
    `<step>.corrupt-<time>` so that the resumed run can write that step again.

    Raises:
      CheckpointMismatchError: the newest readable checkpoint belongs to another config.
      CorruptCheckpointError: checkpoints exist but none of them can be read.
    """
    steps = sorted(self.all_steps(), reverse=True)
    for step in steps:
      try:
        state, meta = self.restore(step, abstract_state)
      except CorruptCheckpointError as e:
        _LOG.warning("skipping corrupted checkpoint: %s (moved to %s)", e,
                     self._move_aside(step))
        continue
      return step, state, meta
    if steps:
      raise CorruptCheckpointError(f"none of the checkpoints {steps} in {self.directory} is "
                                   "readable (moved aside); rerun to start from scratch")
    return None

  def _move_aside(self, step: int) -> epath.Path:
    target = self.directory / f"{step}.corrupt-{int(time.time())}"
    if jax.process_index() == 0:
      (self.directory / str(step)).rename(target)
    self._mgr.reload()
    return target

  def wait(self) -> None:
    try:
      self._mgr.wait_until_finished()
    except (OSError, ValueError) as e:
      error = self._write_error(e)
      if error is None:
        raise
      raise error from e

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._mgr.close()


def _reader(directory: epath.PathLike) -> ocp.CheckpointManager:
  if not epath.Path(directory).exists():
    raise FileNotFoundError(f"checkpoint directory not found: {directory}")
  return ocp.CheckpointManager(epath.Path(directory),
                               item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                                              "meta": ocp.JsonCheckpointHandler()},
                               options=ocp.CheckpointManagerOptions(
                                   read_only=True, create=False, save_interval_steps=0))


def latest_step(directory: epath.PathLike) -> int:
  """The newest complete checkpoint step in `directory`.

  Raises:
    FileNotFoundError: the directory is missing or holds no checkpoint.
  """
  mgr = _reader(directory)
  try:
    step = mgr.latest_step()
  finally:
    mgr.close()
  if step is None:
    raise FileNotFoundError(f"no checkpoint found in {directory}")
  return step


def _unreadable(where: str, e: Exception) -> CorruptCheckpointError:
  return CorruptCheckpointError(f"checkpoint {where} is unreadable: {type(e).__name__}: "
                                f"{' '.join(str(e).split())[:300]}")


class PretrainedParams(dict):
  """Flat {path: host array} params of another run's checkpoint (`load_params`) that remember
  the checkpoint (`directory`, `step`), so that the trainer can take its optimizer state too
  (`TrainConfig.init_optimizer_state`)."""

  def __init__(self, flat: Mapping[str, Any], directory: epath.PathLike, step: int):
    super().__init__(flat)
    self.directory = str(directory)
    self.step = int(step)


def read_params_metadata(directory: epath.PathLike, step: int) -> dict:
  """The array metadata {"trainable": ..., "frozen": ...} of a trainer checkpoint's params.

  Raises:
    CorruptCheckpointError: the step's array metadata cannot be read (one line).
    ValueError: the step holds no trainable/frozen params (not a hint_jax trainer checkpoint).
  """
  where = f"{directory}/{step}"
  mgr = _reader(directory)  # closed on every path (an open one prints event-loop tracebacks)
  try:
    try:
      tree = mgr.item_metadata(step)["state"]
    except Exception as e:  # a missing or garbled step directory
      raise _unreadable(where, e) from e
  finally:
    mgr.close()
  if not tree:
    raise CorruptCheckpointError(f"checkpoint {where} is unreadable: no array metadata "
                                 "(state/_METADATA missing or empty)")
  missing = [k for k in ("trainable", "frozen") if k not in tree]
  if missing:
    raise ValueError(f"checkpoint {where} has no {' or '.join(missing)} params; "
                     "it was not written by the hint_jax trainer")
  return {k: tree[k] for k in ("trainable", "frozen")}


def restore_state_items(directory: epath.PathLike, step: int, item: Mapping,
                        restore_args: Mapping) -> dict:
  """Part of a step's state (`item`: a sub-tree of its metadata) read with `restore_args`
  (host numpy or `ArrayRestoreArgs` with target shardings: each process reads its shards).

  Raises:
    CorruptCheckpointError: truncated or damaged array files (one line).
  """
  mgr = _reader(directory)
  try:
    return mgr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True)))["state"]
  except Exception as e:  # truncated or damaged array files
    raise _unreadable(f"{directory}/{step}", e) from e
  finally:
    mgr.close()


def load_params(directory: epath.PathLike, step: int | None = None) -> PretrainedParams:
  """Flat {path: host array} of the params (trainable and frozen) of another run's checkpoint
  (serving, tests; the trainer reads into sharded targets through `partial_restore`).

  Raises:
    CorruptCheckpointError: the step's array metadata or arrays cannot be read (one line).
    ValueError: the step holds no trainable/frozen params (not a hint_jax trainer checkpoint).
  """
  step = latest_step(directory) if step is None else step
  wanted = read_params_metadata(directory, step)
  args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
  out = restore_state_items(directory, step, wanted, args)
  flat = dict(traverse_util.flatten_dict(out["trainable"], sep="/"))
  flat.update(traverse_util.flatten_dict(out["frozen"], sep="/"))
  return PretrainedParams(flat, directory, step)


def optim_signature(signature: str | None) -> str:
  """The optimizer part of a `TrainConfig.full_signature` ('optim=adafactor frozen=...')."""
  return (signature or "").partition(" | ")[2] or "unrecorded"


def load_opt_state(directory: epath.PathLike, step: int, target: Any) -> tuple[Any, str]:
  """(opt_state, '') restored from another run's checkpoint into `target` (the abstract
  optimizer state, ShapeDtypeStructs carrying shardings), or (None, why not) when the saved
  optimizer state has another structure or shapes (another optimizer, frozen set or layer
  layout).

  Raises:
    CorruptCheckpointError: the step's metadata or arrays cannot be read.
  """
  where = f"{directory}/{step}"
  mgr = _reader(directory)
  try:
    try:
      tree = mgr.item_metadata(step)["state"]
      signature = mgr.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"].get("signature")
    except Exception as e:  # a missing or garbled step directory
      raise _unreadable(where, e) from e
    if not tree or "opt_state" not in tree:
      return None, f"checkpoint {where} holds no optimizer state"
    saved, wanted = _shape_tree(tree["opt_state"]), _shape_tree(target)
    diff = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
    if diff:
      detail = ", ".join(f"{k}: saved {saved.get(k)} vs {wanted.get(k)}" for k in diff[:3])
      return None, (f"its optimizer state does not match this run's ({len(diff)} of "
                    f"{len(wanted)} arrays differ, e.g. {detail}; checkpoint "
                    f"{optim_signature(signature)!r})")
    args = ocp.checkpoint_utils.construct_restore_args(target)
    try:
      out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item={"opt_state": target}, restore_args={"opt_state": args},
          partial_restore=True)))["state"]
    except Exception as e:  # truncated or damaged array files
      raise _unreadable(where, e) from e
  finally:
    mgr.close()
  return out["opt_state"], ""
