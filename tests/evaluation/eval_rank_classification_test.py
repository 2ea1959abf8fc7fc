"""Tests for rank classification on fixed scores and a stand-in model."""
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.data import features
from hint_jax.data import vocab as vocab_lib
from hint_jax.evaluation import rank_classification as rc

EXAMPLES = [
    rc.ChoiceExample("copa", "Pick the short one.", "x", ("a long long answer", "ok"), 1),
    rc.ChoiceExample("copa", "Pick the short one.", "y", ("no", "much longer text here"), 0),
    rc.ChoiceExample("rte", "Entailment?", "p h", ("yes", "no", "it is not clear at all"), 2),
]


class ShortestChoiceModel:
  """score_fn = -number of target tokens: prefers the shortest answer."""

  def score_fn(self, params, batch):
    del params
    return -jnp.sum(batch[features.DECODER_LOSS_WEIGHTS], axis=-1)


def test_accuracy_report_per_dataset_and_average():
  scores = [np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([0.0, 0.5, 3.0])]
  report = rc.accuracy_report(EXAMPLES, scores)
  assert report["per_dataset"] == {"copa": 50.0, "rte": 100.0}
  assert report["average"] == 75.0
  assert report["num_examples"] == {"copa": 2, "rte": 1}


@pytest.mark.parametrize("make", [rc.hint_featurizer, rc.concat_featurizer])
def test_evaluate_with_stand_in_model(make):
  vocab = vocab_lib.get_vocabulary()
  featurize = make(vocab, rc.RankLengths(instruction=16, inputs=8, targets=12))
  report = rc.evaluate(ShortestChoiceModel(), {}, featurize, EXAMPLES, batch_size=4)
  assert report["per_dataset"] == {"copa": 100.0, "rte": 0.0}


def test_hint_features_share_instruction_rows():
  vocab = vocab_lib.get_vocabulary()
  rows = [("A.", "x", "t"), ("B.", "y", "t"), ("A.", "z", "t")]
  batch = rc.hint_featurizer(vocab, rc.RankLengths(8, 8, 4))(rows, 4)
  assert batch[features.HYPER_ENCODER_INPUT_TOKENS].shape == (4, 8)
  np.testing.assert_array_equal(batch[features.TASK_INDEX], [0, 1, 0, 0])
  assert batch[features.DECODER_LOSS_WEIGHTS][3].sum() == 0  # padding row


def test_bad_label_rejected():
  with pytest.raises(ValueError, match="label 2 outside 2 choices"):
    rc.ChoiceExample("d", "", "x", ("a", "b"), 2)


def test_agrees_with_data_module_accuracy():
  from hint_jax.data import rank_classification as data_rc
  records = [{"instruction": "I", "inputs": f"x{i}", "answer_choices": ["no", "yes", "maybe"],
              "label": i % 3, "dataset": "rte" if i < 4 else "cb"} for i in range(7)]
  examples = rc.examples_from_records(records)
  rng = np.random.default_rng(0)
  scores = [rng.normal(size=3) for _ in examples]
  rows = [{"example_index": i, "choice_index": j, "label": r["label"], "dataset": r["dataset"]}
          for i, r in enumerate(records) for j in range(3)]
  theirs = data_rc.accuracy(np.concatenate(scores), rows)
  ours = rc.accuracy_report(examples, scores)
  assert ours["average"] == pytest.approx(theirs["accuracy"])
  assert ours["per_dataset"]["cb"] == pytest.approx(theirs["accuracy_cb"])


class FakePredictor:
  """score = -len(target): prefers the shortest answer."""

  def score(self, instructions, inputs, targets, max_target_len):
    return np.array([-len(t) for t in targets], np.float32)


def test_evaluate_with_predictor():
  report = rc.evaluate_with_predictor(FakePredictor(), EXAMPLES, batch_size=2)
  assert report["per_dataset"] == {"copa": 100.0, "rte": 0.0}
