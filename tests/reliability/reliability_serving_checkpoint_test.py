"""Drill 11: a damaged newest checkpoint at serving time falls back like the trainer.

A model directory holds steps 1, 2 and 3 of tiny HINT (weights drawn with seed = step). Step 3
is damaged four ways. `Predictor.from_checkpoint` and `hint-jax infer` then serve step 2, with
one warning line saying which step was skipped and why; serving moves and deletes nothing. An
explicitly requested damaged step, or all steps damaged, is one clear error line.
"""
import gc
import json
import logging
import pathlib
import shutil
import sys
import time

import jax
import numpy as np
import pytest
from reliability_helpers import tiny_hint

from hint_jax.serving import checkpoint_io, cli
from hint_jax.serving import predictor as predictor_lib
from hint_jax.training import checkpoint

BUCKETS = predictor_lib.Buckets(batch_sizes=(2,), input_lengths=(8,), instruction_lengths=(8,),
                                max_decode_len=2)


def _truncate_arrays(step_dir: pathlib.Path) -> None:  # data lost before it reached the disk
  for path in sorted((step_dir / "state").rglob("*")):
    if path.is_file() and path.parent.name == "d":
      path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 3])


def _drop_array_metadata(step_dir: pathlib.Path) -> None:
  (step_dir / "state" / "_METADATA").unlink()


def _garble_meta(step_dir: pathlib.Path) -> None:
  (step_dir / "meta" / "metadata").write_text('{"hint_config": {"t5": {"vocab_si')


def _empty_step(step_dir: pathlib.Path) -> None:
  shutil.rmtree(step_dir)
  step_dir.mkdir()


# (damage, words of the reason in the one-line message)
DAMAGE = [(_truncate_arrays, "OUT_OF_RANGE"),
          (_drop_array_metadata, "no array metadata (state/_METADATA missing or empty)"),
          (_garble_meta, "its meta item"),
          (_empty_step, "is unreadable")]
IDS = [d[0].__name__.strip("_") for d in DAMAGE]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(model dir with steps 1-3, model, {step: params})."""
  path = tmp_path_factory.mktemp("serving_run")
  ckpt = checkpoint.Checkpointer(path / "checkpoints",
                                 checkpoint.CheckpointConfig(async_save=False, keep=None), "sig")
  params = {}
  for step in (1, 2, 3):
    model, params[step] = tiny_hint(seed=step)
    state = {"trainable": {"hypernet": params[step]["hypernet"]},
             "frozen": {"backbone": params[step]["backbone"]}}
    ckpt.save(step, state, {"hint_config": checkpoint_io.config_to_dict(model.config)})
  ckpt.close()
  return path, model, params


def _damaged_copy(run, tmp_path, damage, steps=(3,)) -> pathlib.Path:
  model_dir = tmp_path / "run"
  shutil.copytree(run[0], model_dir)
  for step in steps:
    damage(model_dir / "checkpoints" / str(step))
  return model_dir


def _skips(caplog) -> list[str]:
  return [r.getMessage() for r in caplog.records if r.name == "hint_jax.serving.checkpoint_io"]


@pytest.mark.parametrize("damage,reason", DAMAGE, ids=IDS)
def test_predictor_falls_back_to_newest_valid_step(run, tmp_path, caplog, damage, reason):
  model_dir = _damaged_copy(run, tmp_path, damage)
  before = sorted(p.name for p in (model_dir / "checkpoints").iterdir())
  with caplog.at_level(logging.WARNING, logger="hint_jax.serving.checkpoint_io"):
    predictor = predictor_lib.Predictor.from_checkpoint(str(model_dir), buckets=BUCKETS)
  assert predictor.source == f"{model_dir}@2"
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(predictor.params), run[2][2])
  (line,) = _skips(caplog)
  assert line.startswith(f"skipping checkpoint step 3: checkpoint {model_dir}/checkpoints/3 is "
                         "unreadable") and reason in line and line.endswith("; trying step 2")
  assert "not written by the hint_jax trainer" not in line and "\n" not in line
  assert sorted(p.name for p in (model_dir / "checkpoints").iterdir()) == before  # untouched


@pytest.mark.parametrize("damage,reason", DAMAGE, ids=IDS)
def test_requested_damaged_step_is_one_clear_line(run, tmp_path, damage, reason):
  model_dir = _damaged_copy(run, tmp_path, damage)
  seen = []
  previous = sys.unraisablehook
  sys.unraisablehook = seen.append  # tensorstore's late callbacks would arrive here
  try:
    with pytest.raises(checkpoint.CorruptCheckpointError) as info:
      predictor_lib.Predictor.from_checkpoint(str(model_dir), step=3, buckets=BUCKETS)
    time.sleep(1.0)  # the late callbacks are timing-dependent
    gc.collect()
  finally:
    sys.unraisablehook = previous
  message = str(info.value)
  assert message.startswith(f"checkpoint {model_dir}/checkpoints/3 is unreadable")
  assert reason in message and "\n" not in message and len(message) < 600
  assert [str(u.exc_value) for u in seen] == []  # no "Event loop is closed" tracebacks


def test_every_step_damaged_is_one_error_naming_them(run, tmp_path, caplog):
  model_dir = _damaged_copy(run, tmp_path, _drop_array_metadata, steps=(1, 2, 3))
  with (caplog.at_level(logging.WARNING, logger="hint_jax.serving.checkpoint_io"),
        pytest.raises(checkpoint.CorruptCheckpointError) as info):
    predictor_lib.Predictor.from_checkpoint(str(model_dir), buckets=BUCKETS)
  assert str(info.value).startswith(f"none of the checkpoints [3, 2, 1] in {model_dir}")
  assert [line.split(":")[0] for line in _skips(caplog)] == [
      f"skipping checkpoint step {s}" for s in (3, 2, 1)]


def test_infer_serves_previous_step_and_names_the_skip(run, tmp_path, caplog, capsys):
  model_dir = _damaged_copy(run, tmp_path, _truncate_arrays)
  src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  src.write_text(json.dumps({"instruction": "Say yes.", "input": "a"}) + "\n")
  argv = ["--model_dir", str(model_dir), "--input", str(src), "--output", str(out),
          "--batch_size", "1", "--max_decode_len", "2", "--no_progress"]
  with caplog.at_level(logging.WARNING, logger="hint_jax.serving.checkpoint_io"):
    assert cli.infer_main(argv) == 0
  (line,) = _skips(caplog)
  assert line.startswith("skipping checkpoint step 3:") and line.endswith("trying step 2")
  assert "prediction" in json.loads(out.read_text())
  out.unlink()
  assert cli.infer_main([*argv, "--step", "3"]) == 1
  err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("hint-jax")]
  assert len(err) == 1 and err[0].startswith(
      f"hint-jax infer: error: CorruptCheckpointError: checkpoint {model_dir}/checkpoints/3 is "
      "unreadable")
  assert not out.exists() and not list(tmp_path.glob(".infer-*"))
