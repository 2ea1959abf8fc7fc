"""Checkpoint signatures: semantic fields, defaults marked, a new defaulted field still resumes."""
import dataclasses

import numpy as np
import pytest

from hint_jax.models import config as model_config
from hint_jax.run import assemble
from hint_jax.t5 import config as t5_config
from hint_jax.training import checkpoint, signature

TINY = model_config.HintConfig(t5=t5_config.T5Config.preset("tiny"))


@dataclasses.dataclass(frozen=True)
class Inner:
  size: int = 4


@dataclasses.dataclass(frozen=True)
class Before:
  width: int
  inner: Inner = dataclasses.field(default_factory=Inner)


@dataclasses.dataclass(frozen=True)
class After:  # `Before` with a field added later, defaulted
  width: int
  inner: Inner = dataclasses.field(default_factory=Inner)
  mode: str = "plain"


def _roundtrip(tmp_path, saved: str, current: str):
  state = {"w": np.arange(3, dtype=np.float32)}
  writer = checkpoint.Checkpointer(tmp_path, checkpoint.CheckpointConfig(async_save=False), saved)
  writer.save(1, state, {})
  writer.close()
  reader = checkpoint.Checkpointer(tmp_path, checkpoint.CheckpointConfig(async_save=False),
                                   current)
  try:
    return reader.restore(1, state)
  finally:
    reader.close()


def test_describe_lists_flattened_fields_and_marks_defaults():
  sig = signature.describe(After(width=8, inner=Inner(size=2)))
  assert sig == "After(width=8, inner.size=2, mode*='plain')"
  assert signature.parse(sig + " | optim=adamw") == {
      "width": ("8", False), "inner.size": ("2", False), "mode": ("'plain'", True),
      "optim": ("adamw", False)}
  # the old format, repr(config), parses to the same names
  assert set(signature.parse(repr(TINY))) <= set(signature.parse(assemble.signature(TINY)))


def test_checkpoint_from_before_a_new_defaulted_field_resumes(tmp_path):
  old = signature.describe(Before(width=8)) + " | optim=adamw"
  state, _ = _roundtrip(tmp_path / "a", old, signature.describe(After(width=8)) + " | optim=adamw")
  np.testing.assert_array_equal(state["w"], np.arange(3))
  with pytest.raises(checkpoint.CheckpointMismatchError, match="different config"):
    _roundtrip(tmp_path / "b", old,
               signature.describe(After(width=8, mode="fancy")) + " | optim=adamw")
  with pytest.raises(checkpoint.CheckpointMismatchError):
    _roundtrip(tmp_path / "c", old, signature.describe(After(width=9)) + " | optim=adamw")
  assert signature.differences(old, signature.describe(After(width=9, mode="x"))
                               + " | optim=adamw") == [
      "mode: checkpoint (absent), this run 'x'", "width: checkpoint 8, this run 9"]


def test_legacy_repr_checkpoint_resumes_under_the_semantic_signature(tmp_path):
  # what the trainer stored before semantic signatures, for a config without a later field
  legacy = repr(TINY).replace(", max_instruction_length=1024", "") + " | optim=adamw"
  assert "max_instruction_length" not in legacy
  _roundtrip(tmp_path / "a", legacy, assemble.signature(TINY) + " | optim=adamw")
  changed = dataclasses.replace(TINY, max_instruction_length=64)
  assert signature.differences(legacy, assemble.signature(changed) + " | optim=adamw") == [
      "max_instruction_length: checkpoint (absent), this run 64"]
  other = dataclasses.replace(TINY, fusion=False)
  with pytest.raises(checkpoint.CheckpointMismatchError):
    _roundtrip(tmp_path / "b", legacy, assemble.signature(other) + " | optim=adamw")


def test_concat_and_hint_never_match():
  concat = dataclasses.replace(TINY, hypernet=None, fusion=False,
                               peft=dataclasses.replace(TINY.peft, adapter_size=None,
                                                        prefix_length=None, lora=None))
  assert not signature.compatible(assemble.signature(concat), assemble.signature(TINY))
  assert not signature.compatible(assemble.signature(TINY), assemble.signature(concat))
  assert not signature.compatible(None, assemble.signature(TINY))
  assert signature.compatible("toy", "toy") and not signature.compatible("toy", "toy d=2")
