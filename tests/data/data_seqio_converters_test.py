"""Tests that the seqio FeatureConverter wrappers match the numpy converters."""
import numpy as np
import pytest
import tensorflow as tf

from hint_jax.data import converters, seqio_converters
from hint_jax.data import features as F

LENGTHS = {F.INSTRUCTION: 5, F.INPUTS: 4, F.TARGETS: 3}
EXAMPLES = [
    {F.INSTRUCTION: [7, 8, 1], F.INPUTS: [3, 1], F.TARGETS: [4, 1]},
    {F.INSTRUCTION: [9, 1], F.INPUTS: [5, 6, 1], F.TARGETS: [6, 1]},
    {F.INSTRUCTION: [7, 8, 1], F.INPUTS: [3, 3, 3, 3, 3, 1], F.TARGETS: [4, 4, 4, 1]},
    {F.INSTRUCTION: [1], F.INPUTS: [3, 1], F.TARGETS: [1]},
]


def _dataset():
  return tf.data.Dataset.from_generator(
      lambda: iter(EXAMPLES),
      output_signature={k: tf.TensorSpec([None], tf.int32) for k in EXAMPLES[0]})


def _batched(converter, lengths):
  ds = converter(_dataset(), lengths).batch(len(EXAMPLES))
  return {k: v.numpy() for k, v in next(iter(ds)).items()}


def _np_examples():
  return [{k: np.asarray(v, np.int32) for k, v in ex.items()} for ex in EXAMPLES]


def test_hint_converter_matches_numpy_after_table():
  conv = seqio_converters.HintFeatureConverter()
  batch = converters.to_task_table(_batched(conv, LENGTHS))
  expected, stats = converters.hint_batch(_np_examples(), LENGTHS)
  assert batch.keys() == expected.keys()
  for k in expected:
    np.testing.assert_array_equal(batch[k], expected[k], err_msg=k)
  assert conv.counts() == {F.INSTRUCTION: 0, F.INPUTS: 1, F.TARGETS: 1} == {
      k: stats.truncated[k] for k in conv.counts()}


def test_concat_converter_matches_numpy():
  lengths = dict(LENGTHS, inputs=5)
  conv = seqio_converters.ConcatFeatureConverter()
  batch = _batched(conv, lengths)
  expected, _ = converters.concat_batch(_np_examples(), lengths)
  assert batch.keys() == expected.keys()
  for k in expected:
    np.testing.assert_array_equal(batch[k], expected[k], err_msg=k)
  assert conv.counts()[F.INPUTS] == 1


def test_packing_rejected():
  with pytest.raises(ValueError, match="packing is not supported"):
    seqio_converters.HintFeatureConverter(pack=True)
