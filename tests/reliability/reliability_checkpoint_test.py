"""Drills 2 and 3: a corrupted latest checkpoint is skipped; a full disk fails clearly.

Both use the toy model of tests/training through the real loop, orbax and async saves.
"""
import errno
import logging
import pathlib
import shutil
import time

import pytest
import training_toy_model as toy
from orbax.checkpoint._src.handlers import json_checkpoint_handler
from reliability_helpers import assert_bitwise_equal, flat_params, record, toy_config

from hint_jax.training import checkpoint, loop


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory) -> pathlib.Path:
  """A model dir holding checkpoints 2, 4 and 6 of the toy run."""
  model_dir = tmp_path_factory.mktemp("six")
  loop.train(toy_config(model_dir, 6), toy.ToyModel(), toy.source())
  return model_dir


def _files(step_dir: pathlib.Path, part: str) -> list[pathlib.Path]:
  return sorted(p for p in (step_dir / part).rglob("*") if p.is_file())


def _truncate_arrays(step_dir):  # a crash after rename, before the data reached the disk
  for path in _files(step_dir, "state"):
    if path.parent.name == "d":
      path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 3])


def _drop_array_metadata(step_dir):  # half-written: the state's metadata never arrived
  (step_dir / "state" / "_METADATA").unlink()


def _garble_meta(step_dir):  # half-written json meta item
  (step_dir / "meta" / "metadata").write_text('{"data_step": 6, "signa')


def _empty_step(step_dir):  # a step directory whose contents were lost entirely
  shutil.rmtree(step_dir)
  step_dir.mkdir()


@pytest.mark.parametrize("damage", [
    {6: _truncate_arrays, 4: _drop_array_metadata},
    {6: _garble_meta, 4: _empty_step},
], ids=lambda d: "+".join(f"{s}:{f.__name__.strip('_')}" for s, f in d.items()))
def test_corrupted_latest_checkpoints_are_skipped(six_steps, reference, tmp_path, caplog,
                                                  damage):
  """Steps 6 and 4 damaged in two different ways each: both reported, resume from step 2."""
  model_dir = tmp_path / "run"
  shutil.copytree(six_steps, model_dir)
  ckpt_dir = model_dir / "checkpoints"
  for step, corrupt in damage.items():
    corrupt(ckpt_dir / str(step))
  start = time.perf_counter()
  with caplog.at_level(logging.WARNING, logger="hint_jax.training.checkpoint"):
    state = loop.train(toy_config(model_dir, 8), toy.ToyModel(), toy.source())
  seconds = time.perf_counter() - start
  warnings = [r.getMessage() for r in caplog.records if "corrupted checkpoint" in r.getMessage()]
  assert len(warnings) == 2, warnings
  for step, warning in zip((6, 4), warnings):
    assert f"checkpoints/{step} is unreadable" in warning and f"{step}.corrupt-" in warning
  assert_bitwise_equal(flat_params(state), reference(8))  # resumed from step 2
  assert checkpoint.Checkpointer(ckpt_dir, checkpoint.CheckpointConfig(), "toy").all_steps() == [
      4, 6, 8]
  assert sorted(p.name.split("-")[0] for p in ckpt_dir.glob("*.corrupt-*")) == [
      "4.corrupt", "6.corrupt"]
  record("corrupted_checkpoint", case="+".join(f.__name__.strip("_") for f in damage.values()),
         resume_s=round(seconds, 2), resumed_from=2, lost_steps=4)


def test_all_checkpoints_corrupted_is_an_error(six_steps, tmp_path):
  model_dir = tmp_path / "run"
  shutil.copytree(six_steps, model_dir)
  for step in (2, 4, 6):
    _garble_meta(model_dir / "checkpoints" / str(step))
  with pytest.raises(checkpoint.CorruptCheckpointError, match=r"none of the checkpoints"):
    loop.train(toy_config(model_dir, 8), toy.ToyModel(), toy.source())


def test_disk_full_during_async_save(reference, tmp_path, monkeypatch):
  """ENOSPC injected into the (background) write of step 4: clear error, step 2 intact."""
  handler = json_checkpoint_handler.JsonCheckpointHandler
  real_save = handler._save_fn  # pylint: disable=protected-access

  async def full_disk(self, item, directory):
    if item.get("data_step", 0) >= 4:
      raise OSError(errno.ENOSPC, "No space left on device", str(directory))
    return await real_save(self, item, directory)

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full_disk)
  with pytest.raises(OSError, match=r"No space left on device.*newest complete checkpoint: "
                                    r"step 2") as error:
    loop.train(toy_config(tmp_path, 8), toy.ToyModel(), toy.source())
  assert error.value.errno == errno.ENOSPC
  monkeypatch.undo()
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints", checkpoint.CheckpointConfig(), "toy")
  assert ckpt.all_steps() == [2]
  import jax  # pylint: disable=import-outside-toplevel
  restored = ckpt._mgr.restore(2)  # pylint: disable=protected-access  # readable, complete
  assert int(jax.device_get(restored["state"]["step"])) == 2
  ckpt.close()
  start = time.perf_counter()
  state = loop.train(toy_config(tmp_path, 8), toy.ToyModel(), toy.source())  # space freed
  assert_bitwise_equal(flat_params(state), reference(8))
  record("disk_full", failed_step=4, kept_step=2, resume_after_free_s=round(
      time.perf_counter() - start, 2))


def test_disk_full_for_tensorboard_events(tmp_path, monkeypatch):
  """A real full tmpfs fails first in TensorFlow's event writer, whose error is no OSError."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from clu import metric_writers  # pylint: disable=import-outside-toplevel

  def full_disk(logdir, **_):
    raise tf.errors.ResourceExhaustedError(None, None, f"{logdir}/events; No space left on device")

  monkeypatch.setattr(metric_writers, "create_default_writer", full_disk)
  with pytest.raises(OSError, match=r"cannot write TensorBoard events to .*No space left"):
    loop.train(toy_config(tmp_path, 2), toy.ToyModel(), toy.source())
