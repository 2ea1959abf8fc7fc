"""Tests of the held-out rank classification (records, rows, accuracy) and hyper-pretraining."""
import numpy as np
import pytest

from hint_jax.data import features as F
from hint_jax.data import pretrain, rank_classification


def test_heldout_records_from_sni_test_tasks(shared_data):
  records = list(rank_classification.records(sni_dir=shared_data / "sni"))
  by_dataset = {}
  for r in records:
    by_dataset.setdefault(r["dataset"], set()).add(tuple(r["answer_choices"]))
    assert r["answer_choices"][r["label"]] == r["targets"]
  assert by_dataset["rte"] == {("0", "1")}
  assert by_dataset["cb"] == {("Contradiction", "Entailment", "Neutral")}
  assert by_dataset["copa"] == {("A", "B"), ("cause", "effect")}
  assert set(by_dataset) == {"rte", "cb", "anli", "copa", "wsc", "winogrande"}
  assert len(records) == 800
  assert records[0]["instruction"].startswith("Definition: In this task, you're given two")


def _rows():
  examples = [{"answer_choices": ["yes", "no"], "label": 0, "dataset": "a"},
              {"answer_choices": ["x", "y", "z"], "label": 2, "dataset": "a"},
              {"answer_choices": ["p", "q"], "label": 1, "dataset": "b"}]
  return rank_classification.expand_choices(examples, lambda s: [ord(c) for c in s])


def test_expand_choices_and_accuracy_hand_computed():
  rows = _rows()
  assert [(r["example_index"], r["choice_index"]) for r in rows] == [
      (0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
  np.testing.assert_array_equal(rows[0][F.TARGETS], [ord("y"), ord("e"), ord("s"), F.EOS_ID])
  # Example 0 picks "yes" (right), example 1 picks "y" (wrong), example 2 picks "q" (right).
  scores = [-1.0, -2.0, -5.0, -0.5, -3.0, -4.0, -1.0]
  assert rank_classification.predictions(scores, rows) == {0: 0, 1: 1, 2: 1}
  assert rank_classification.accuracy(scores, rows) == {
      "accuracy_a": 50.0, "accuracy_b": 100.0, "accuracy": 75.0}
  with pytest.raises(ValueError):
    rank_classification.accuracy(scores[:-1], rows)


def test_split_points_independent_deterministic_and_in_range():
  points = [pretrain.split_points(512, seed=0, chunk_index=i) for i in range(2000)]
  assert points == [pretrain.split_points(512, seed=0, chunk_index=i) for i in range(2000)]
  assert all(1 <= a <= b <= 511 for a, b in points)
  # Independent uniform draws: the larger point has mean 2/3 of the range, not 3/4 (nested).
  mean_b = np.mean([b for _, b in points]) / 512
  assert abs(mean_b - 2 / 3) < 0.02
  assert pretrain.split_points(512, 1, 0) != pretrain.split_points(512, 2, 0)


def test_records_reassemble_their_chunk():
  texts = ["a b c d e f g", "h i j", "k l m n o p q r s t"]
  encode = lambda t: [ord(c) for c in t.split()]
  cfg = pretrain.PretrainConfig(chunk_length=6, validation_every=3)
  chunks = list(pretrain.chunks((encode(t) for t in texts), 6))
  assert len(chunks) == 3 and all(len(c) == 6 for c in chunks)
  train = list(pretrain.records(texts, encode, "train", cfg))
  valid = list(pretrain.records(texts, encode, "validation", cfg))
  assert len(train) == 2 and len(valid) == 1
  for rec, chunk in zip(valid + train, chunks):
    assert rec[F.INSTRUCTION] + rec[F.INPUTS] + rec[F.TARGETS] == chunk.tolist()
    assert rec[F.INSTRUCTION] and rec[F.TARGETS]
  with pytest.raises(ValueError, match="unknown pretraining split 'test'"):
    list(pretrain.records(texts, encode, "test", cfg))
