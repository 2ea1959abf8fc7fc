"""P3-style rank classification: score every answer choice with `Model.score_fn`, take the argmax."""
from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from hint_jax import types
from hint_jax.data import features
from hint_jax.models import interface
from hint_jax.serving import batching

# (instruction, inputs, target) rows -> model batch with `batch_size` rows.
Featurize = Callable[[Sequence[tuple[str, str, str]], int], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class ChoiceExample:
  """One multiple-choice example; `label` indexes the correct entry of `choices`."""
  dataset: str
  instruction: str
  inputs: str
  choices: tuple[str, ...]
  label: int

  def __post_init__(self):
    if not self.choices:
      raise ValueError(f"{self.dataset}: example has no answer choices")
    if not 0 <= self.label < len(self.choices):
      raise ValueError(f"{self.dataset}: label {self.label} outside {len(self.choices)} choices")


def examples_from_records(records: Sequence[Mapping]) -> list[ChoiceExample]:
  """`ChoiceExample`s from `hint_jax.data.rank_classification.records` (HINT format)."""
  return [ChoiceExample(dataset=r["dataset"], instruction=r[features.INSTRUCTION],
                        inputs=r[features.INPUTS], choices=tuple(r["answer_choices"]),
                        label=int(r["label"])) for r in records]


@dataclasses.dataclass(frozen=True)
class RankLengths:
  instruction: int = 256
  inputs: int = 512
  targets: int = 64


def _targets(vocab, rows, lengths: RankLengths, batch_size: int) -> dict[str, np.ndarray]:
  tgt = batching.pad(batching.tokenize(vocab, [r[2] for r in rows], lengths.targets),
                     lengths.targets, batch_size)
  return {features.DECODER_TARGET_TOKENS: tgt,
          features.DECODER_INPUT_TOKENS: batching.shift_right(tgt),
          features.DECODER_LOSS_WEIGHTS: (tgt > 0).astype(np.float32)}


def hint_featurizer(vocab, lengths: RankLengths = RankLengths()) -> Featurize:
  """Instruction to the hypernetwork (one table row per distinct instruction), input to T5."""
  def featurize(rows, batch_size):
    table = list(dict.fromkeys(r[0] for r in rows))
    index = np.zeros((batch_size,), np.int32)
    index[:len(rows)] = [table.index(r[0]) for r in rows]
    batch = _targets(vocab, rows, lengths, batch_size)
    batch[features.HYPER_ENCODER_INPUT_TOKENS] = batching.pad(
        batching.tokenize(vocab, table, lengths.instruction), lengths.instruction, batch_size)
    batch[features.TASK_INDEX] = index
    batch[features.ENCODER_INPUT_TOKENS] = batching.pad(
        batching.tokenize(vocab, [r[1] for r in rows], lengths.inputs), lengths.inputs,
        batch_size)
    return batch
  return featurize


def concat_featurizer(vocab, lengths: RankLengths = RankLengths(),
                      separator: str = "\n\n") -> Featurize:
  """Concatenation baseline: `instruction + separator + input` as the encoder input."""
  def featurize(rows, batch_size):
    texts = [f"{r[0]}{separator}{r[1]}" if r[0] else r[1] for r in rows]
    batch = _targets(vocab, rows, lengths, batch_size)
    batch[features.ENCODER_INPUT_TOKENS] = batching.pad(
        batching.tokenize(vocab, texts, lengths.instruction + lengths.inputs),
        lengths.instruction + lengths.inputs, batch_size)
    return batch
  return featurize


def score_choices(score_batch: Callable[[Mapping[str, np.ndarray]], types.Array],
                  featurize: Featurize, examples: Sequence[ChoiceExample],
                  batch_size: int = 8) -> list[np.ndarray]:
  """Log-likelihood of every choice of every example, batched in fixed-size batches.

  Returns:
    One float array per example, [num_choices].
  """
  rows = [(ex.instruction, ex.inputs, c) for ex in examples for c in ex.choices]
  scores = []
  for start, stop in batching.chunks(len(rows), batch_size):
    out = np.asarray(score_batch(featurize(rows[start:stop], batch_size)))
    scores.extend(out[:stop - start].tolist())
  result, offset = [], 0
  for ex in examples:
    result.append(np.asarray(scores[offset:offset + len(ex.choices)]))
    offset += len(ex.choices)
  return result


def accuracy_report(examples: Sequence[ChoiceExample], scores: Sequence[np.ndarray]) -> dict:
  """Accuracy x100 per dataset and their unweighted average (as T0/HINT report P3)."""
  if len(examples) != len(scores):
    raise ValueError(f"{len(examples)} examples but {len(scores)} score arrays")
  correct = collections.defaultdict(list)
  for ex, s in zip(examples, scores):
    if len(s) != len(ex.choices):
      raise ValueError(f"{ex.dataset}: {len(ex.choices)} choices but {len(s)} scores")
    correct[ex.dataset].append(float(int(np.argmax(s)) == ex.label))
  per_dataset = {d: 100.0 * float(np.mean(c)) for d, c in sorted(correct.items())}
  return {"per_dataset": per_dataset,
          "average": float(np.mean(list(per_dataset.values()))),
          "num_examples": {d: len(c) for d, c in sorted(correct.items())}}


def evaluate_with_predictor(predictor, examples: Sequence[ChoiceExample],
                            batch_size: int = 32, max_target_len: int = 64) -> dict:
  """Rank classification through a serving `Predictor` (TaskParams cached per instruction)."""
  def score_rows(rows):  # rows pass through unfeaturized: the predictor tokenizes them
    return predictor.score([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                           max_target_len)
  scores = score_choices(score_rows, lambda rows, _: rows, examples, batch_size)
  return accuracy_report(examples, scores)


def evaluate(model: interface.Model, params: types.PyTree, featurize: Featurize,
             examples: Sequence[ChoiceExample], batch_size: int = 8) -> dict:
  """Rank classification of `examples` with `model.score_fn` (jitted once per batch shape)."""
  score_batch = jax.jit(model.score_fn)
  scores = score_choices(lambda b: score_batch(params, b), featurize, examples, batch_size)
  return accuracy_report(examples, scores)
