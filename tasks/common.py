"""Shared pieces of the task registrations: output features, idempotent add, simple sources."""
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence

import seqio
import tensorflow as tf

from hint_jax.data import features as F
from hint_jax.data import paths
from hint_jax.data import vocab as vocab_lib

VOCAB_ENV_VAR = paths.ENV_VARS["vocab_path"]
DEFAULT_PREPROCESSORS = (seqio.preprocessors.tokenize, seqio.preprocessors.append_eos)


def vocabulary() -> seqio.SentencePieceVocabulary:
  """The task vocabulary: the `vocab_path` data setting (`DataSettings`, $HINT_VOCAB_PATH, e.g.
  T5's spm model) or the committed default."""
  return _vocabulary(paths.setting("vocab_path"))


@functools.cache
def _vocabulary(path: str | None) -> seqio.SentencePieceVocabulary:
  return vocab_lib.get_seqio_vocabulary(path)


def output_features() -> dict[str, seqio.Feature]:
  """`instruction`, `inputs`, `targets` string features, tokenized with EOS appended."""
  voc = vocabulary()
  return {name: seqio.Feature(voc, add_eos=True, dtype=tf.int32)
          for name in (F.INSTRUCTION, F.INPUTS, F.TARGETS)}


def add_task(name: str, source: seqio.DataSource, metric_fns: Sequence[Callable] = (),
             preprocessors: Sequence[Callable] = DEFAULT_PREPROCESSORS,
             postprocess_fn: Callable | None = None) -> None:
  """Registers a task unless a task of that name exists (registration is idempotent)."""
  if name in seqio.TaskRegistry.names():
    return
  seqio.TaskRegistry.add(name, source=source, preprocessors=list(preprocessors),
                         output_features=output_features(), metric_fns=list(metric_fns),
                         postprocess_fn=postprocess_fn)


def add_mixture(name: str, tasks: Sequence[str | tuple[str, float]],
                default_rate: float | Callable | None = None) -> None:
  """Registers a mixture unless one of that name exists."""
  if name in seqio.MixtureRegistry.names():
    return
  seqio.MixtureRegistry.add(name, list(tasks), default_rate=default_rate)


def _ragged(values: list[list]) -> tf.RaggedTensor:
  """Ragged column from python lists (much faster than `tf.ragged.constant` on big inputs)."""
  flat = [x for row in values for x in row]
  dtype = tf.string if flat and isinstance(flat[0], str) else tf.int32
  return tf.RaggedTensor.from_row_lengths(tf.constant(flat, dtype=dtype),
                                          [len(row) for row in values])


def records_dataset(records: Iterable[Mapping[str, object]]) -> tf.data.Dataset:
  """An in-memory `tf.data.Dataset` of records sharing keys (list values become ragged)."""
  records = list(records)
  if not records:
    raise ValueError("no records")
  columns = {}
  for key in records[0]:
    values = [r[key] for r in records]
    columns[key] = _ragged(values) if isinstance(values[0], list) else values
  return tf.data.Dataset.from_tensor_slices(columns)


def function_source(make_records: Callable[[str], Iterable[Mapping[str, object]]],
                    splits: Sequence[str]) -> seqio.FunctionDataSource:
  """A seqio source whose split is built in memory by `make_records(split)` when first read."""

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed  # records come in a fixed order; the batch pipeline shuffles.
    return records_dataset(make_records(split))

  return seqio.FunctionDataSource(dataset_fn, splits=list(splits))


def examples_rate(task: seqio.Task, cap: int | None = None) -> float:
  """Examples-proportional mixing rate of the `train` split, capped at `cap` (T0 style)."""
  from hint_jax.data import pipeline  # pylint: disable=g-import-not-at-top  # avoids a cycle
  count = len(pipeline.load_task(task.name, "train"))
  return float(min(count, cap) if cap else count)
