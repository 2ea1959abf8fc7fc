"""Tests of the numpy feature converters: shapes, shifting, truncation counts, the task table."""
import numpy as np
import pytest

from hint_jax.data import converters
from hint_jax.data import features as F

LENGTHS = {F.INSTRUCTION: 5, F.INPUTS: 4, F.TARGETS: 3}


def _ex(instr, inputs, targets):
  return {F.INSTRUCTION: np.array(instr, np.int32), F.INPUTS: np.array(inputs, np.int32),
          F.TARGETS: np.array(targets, np.int32)}


EXAMPLES = [_ex([7, 8, 1], [3, 1], [4, 1]), _ex([9, 1], [5, 6, 1], [6, 1]),
            _ex([7, 8, 1], [3, 3, 3, 3, 3, 1], [4, 4, 4, 1]), _ex([1], [3, 1], [1])]


def test_hint_batch_values():
  batch, stats = converters.hint_batch(EXAMPLES, LENGTHS)
  np.testing.assert_array_equal(batch[F.HYPER_ENCODER_INPUT_TOKENS], [
      [7, 8, 1, 0, 0], [9, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(batch[F.TASK_INDEX], [0, 1, 0, 2])
  np.testing.assert_array_equal(batch[F.ENCODER_INPUT_TOKENS], [
      [3, 1, 0, 0], [5, 6, 1, 0], [3, 3, 3, 1], [3, 1, 0, 0]])
  np.testing.assert_array_equal(batch[F.DECODER_TARGET_TOKENS], [
      [4, 1, 0], [6, 1, 0], [4, 4, 1], [1, 0, 0]])
  np.testing.assert_array_equal(batch[F.DECODER_INPUT_TOKENS], [
      [0, 4, 1], [0, 6, 1], [0, 4, 4], [0, 1, 0]])
  np.testing.assert_array_equal(batch[F.DECODER_LOSS_WEIGHTS], [
      [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
  assert all(v.dtype == (np.float32 if k == F.DECODER_LOSS_WEIGHTS else np.int32)
             for k, v in batch.items())
  assert stats.truncated == {F.INPUTS: 1, F.TARGETS: 1} and stats.examples == 4


def test_table_rows_reproduce_each_instruction():
  rng = np.random.default_rng(0)
  instr = [rng.integers(3, 6, size=3).astype(np.int32) for _ in range(16)]
  table, index = converters.instruction_table(instr, 16)
  for b, tokens in enumerate(instr):
    np.testing.assert_array_equal(table[index[b]], tokens)
  unique = len({t.tobytes() for t in instr})
  assert index.max() == unique - 1 and not table[unique:].any()


def test_instruction_truncation_is_counted_and_keeps_eos():
  long = _ex(list(range(3, 12)) + [1], [3, 1], [4, 1])
  batch, stats = converters.hint_batch([long], LENGTHS, num_task_rows=2)
  np.testing.assert_array_equal(batch[F.HYPER_ENCODER_INPUT_TOKENS], [[3, 4, 5, 6, 1], [0] * 5])
  assert stats.truncated[F.INSTRUCTION] == 1
  # WordPiece instructions (a BERT instruction encoder) close with [SEP] (102), kept the same way
  wordpiece = _ex([101, 5, 6, 7, 8, 9, 102], [3, 1], [4, 1])
  batch, _ = converters.hint_batch([wordpiece], LENGTHS, num_task_rows=1)
  np.testing.assert_array_equal(batch[F.HYPER_ENCODER_INPUT_TOKENS], [[101, 5, 6, 7, 102]])


def test_too_many_unique_instructions_raises():
  with pytest.raises(ValueError, match="3 unique instructions but the table has only 2 rows"):
    converters.hint_batch(EXAMPLES, LENGTHS, num_task_rows=2)


def test_missing_length_raises():
  with pytest.raises(KeyError, match="instruction"):
    converters.hint_batch(EXAMPLES, {F.INPUTS: 4, F.TARGETS: 3})
  with pytest.raises(ValueError, match="unknown converter 'x'"):
    converters.convert("x", EXAMPLES, LENGTHS)


def test_concat_batch_prepends_instruction_without_its_eos():
  batch, stats = converters.concat_batch(EXAMPLES, {F.INPUTS: 5, F.TARGETS: 3})
  assert F.HYPER_ENCODER_INPUT_TOKENS not in batch and F.TASK_INDEX not in batch
  np.testing.assert_array_equal(batch[F.ENCODER_INPUT_TOKENS], [
      [7, 8, 3, 1, 0], [9, 5, 6, 1, 0], [7, 8, 3, 3, 1], [3, 1, 0, 0, 0]])
  assert stats.truncated[F.INPUTS] == 1
