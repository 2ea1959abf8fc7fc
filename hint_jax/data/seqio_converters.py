"""seqio.FeatureConverter wrappers of the HINT and concatenation converters (tf.data, T5X style).

They give the same per-example values as `converters.py` (over-long sequences are cut with EOS
kept, and every cut is counted in `converter.truncated`). A tf.data example holds its own
instruction, so HINT output has `hyper_encoder_input_tokens` [I] per example; after batching,
`converters.to_task_table(batch)` turns the [B, I] rows into the de-duplicated table + task_index.
Read tasks with `trim_output_features=False` (seqio.get_dataset) so that cuts happen, and are
counted, here rather than silently in SeqIO.
"""
from typing import ClassVar

import seqio
import tensorflow as tf

from hint_jax.data import features as F

_SPEC = seqio.FeatureConverter.FeatureSpec


class _CountingConverter(seqio.FeatureConverter):
  """Shared trimming (EOS kept, cuts counted) for the converters below."""

  TASK_FEATURES: ClassVar[dict] = {F.INSTRUCTION: _SPEC(dtype=tf.int32), F.INPUTS: _SPEC(dtype=tf.int32),
                   F.TARGETS: _SPEC(dtype=tf.int32)}
  PACKING_FEATURE_DTYPES: ClassVar[dict] = {}

  def __init__(self, **kwargs):
    kwargs.setdefault("pack", False)
    kwargs.setdefault("apply_length_check", False)  # over-long inputs are cut and counted here
    if kwargs["pack"]:
      raise ValueError("packing is not supported: HINT examples carry their own instruction")
    super().__init__(**kwargs)
    self.truncated = {name: tf.Variable(0, dtype=tf.int64, trainable=False)
                      for name in self.TASK_FEATURES}

  def _fit(self, tokens: tf.Tensor, length: int, name: str) -> tf.Tensor:
    too_long = tf.size(tokens) > length
    self.truncated[name].assign_add(tf.cast(too_long, tf.int64))
    cut = tf.concat([tokens[:length - 1], tf.constant([F.EOS_ID], tf.int32)], axis=0)
    tokens = tf.cond(too_long, lambda: cut, lambda: tokens)
    return tf.pad(tokens, [[0, length - tf.size(tokens)]])

  def _decoder(self, targets: tf.Tensor, length: int) -> dict[str, tf.Tensor]:
    target = self._fit(targets, length, F.TARGETS)
    return {F.DECODER_TARGET_TOKENS: target,
            F.DECODER_INPUT_TOKENS: seqio.utils.make_autoregressive_inputs(target),
            F.DECODER_LOSS_WEIGHTS: seqio.non_padding_position(target, dtype=tf.float32)}

  def counts(self) -> dict[str, int]:
    """Number of truncated sequences per task feature so far."""
    return {name: int(v.numpy()) for name, v in self.truncated.items()}


class HintFeatureConverter(_CountingConverter):
  """instruction -> hyper_encoder_input_tokens [I], inputs -> encoder, targets -> decoder."""

  MODEL_FEATURES: ClassVar[dict] = {k: _SPEC(dtype=tf.float32 if k == F.DECODER_LOSS_WEIGHTS else tf.int32)
                    for k in (F.HYPER_ENCODER_INPUT_TOKENS, F.ENCODER_INPUT_TOKENS,
                              F.DECODER_INPUT_TOKENS, F.DECODER_TARGET_TOKENS,
                              F.DECODER_LOSS_WEIGHTS)}

  def _convert_features(self, ds: tf.data.Dataset, task_feature_lengths) -> tf.data.Dataset:
    lengths = dict(task_feature_lengths)

    def convert(ex):
      out = {F.HYPER_ENCODER_INPUT_TOKENS: self._fit(ex[F.INSTRUCTION], lengths[F.INSTRUCTION],
                                                     F.INSTRUCTION),
             F.ENCODER_INPUT_TOKENS: self._fit(ex[F.INPUTS], lengths[F.INPUTS], F.INPUTS)}
      out.update(self._decoder(ex[F.TARGETS], lengths[F.TARGETS]))
      return out

    return ds.map(convert, num_parallel_calls=1, deterministic=True)

  def get_model_feature_lengths(self, task_feature_lengths) -> dict[str, int]:
    return {F.HYPER_ENCODER_INPUT_TOKENS: task_feature_lengths[F.INSTRUCTION],
            F.ENCODER_INPUT_TOKENS: task_feature_lengths[F.INPUTS],
            F.DECODER_INPUT_TOKENS: task_feature_lengths[F.TARGETS],
            F.DECODER_TARGET_TOKENS: task_feature_lengths[F.TARGETS],
            F.DECODER_LOSS_WEIGHTS: task_feature_lengths[F.TARGETS]}


class ConcatFeatureConverter(_CountingConverter):
  """Instruction (without its EOS) + inputs -> encoder; no hypernetwork features."""

  MODEL_FEATURES: ClassVar[dict] = {k: _SPEC(dtype=tf.float32 if k == F.DECODER_LOSS_WEIGHTS else tf.int32)
                    for k in (F.ENCODER_INPUT_TOKENS, F.DECODER_INPUT_TOKENS,
                              F.DECODER_TARGET_TOKENS, F.DECODER_LOSS_WEIGHTS)}

  def _convert_features(self, ds: tf.data.Dataset, task_feature_lengths) -> tf.data.Dataset:
    lengths = dict(task_feature_lengths)

    def convert(ex):
      instr = ex[F.INSTRUCTION]
      instr = tf.cond(tf.logical_and(tf.size(instr) > 0, instr[-1] == F.EOS_ID),
                      lambda: instr[:-1], lambda: instr)
      enc = tf.concat([instr, ex[F.INPUTS]], axis=0)
      out = {F.ENCODER_INPUT_TOKENS: self._fit(enc, lengths[F.INPUTS], F.INPUTS)}
      out.update(self._decoder(ex[F.TARGETS], lengths[F.TARGETS]))
      return out

    return ds.map(convert, num_parallel_calls=1, deterministic=True)

  def get_model_feature_lengths(self, task_feature_lengths) -> dict[str, int]:
    return {F.ENCODER_INPUT_TOKENS: task_feature_lengths[F.INPUTS],
            F.DECODER_INPUT_TOKENS: task_feature_lengths[F.TARGETS],
            F.DECODER_TARGET_TOKENS: task_feature_lengths[F.TARGETS],
            F.DECODER_LOSS_WEIGHTS: task_feature_lengths[F.TARGETS]}
