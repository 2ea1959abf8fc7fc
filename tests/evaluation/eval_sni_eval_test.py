"""Tests for SNI evaluation through a predictor, with instruction-reliance controls."""
import pytest

from hint_jax.evaluation import sni_eval

RECORDS = [
    {"instruction": "Say yes.", "inputs": "q1", "references": ["yes"], "task": "t1",
     "category": "A", "id": "1"},
    {"instruction": "Say yes.", "inputs": "q2", "references": ["yes"], "task": "t1",
     "category": "A", "id": "2"},
    {"instruction": "Say no.", "inputs": "q3", "references": ["no"], "task": "t2",
     "category": "B", "id": "3"},
]


class FollowsInstructions:
  """Stand-in predictor: answers what the instruction says; 'hmm' without one."""

  def __init__(self):
    self.calls = []

  def generate(self, instructions, inputs, **options):
    self.calls.append((list(instructions), options))
    return [i.split()[-1].rstrip(".") if i else "hmm" for i in instructions]


def test_evaluate_with_controls():
  pred = FollowsInstructions()
  out = sni_eval.evaluate(pred, RECORDS, max_decode_len=4)
  assert out["report"]["overall"]["exact_match"] == 100.0
  assert out["report"]["per_category"]["B"]["num_examples"] == 1
  rel = out["reliance"]
  assert rel["conditions"]["other"]["exact_match"] == 0.0
  assert rel["conditions"]["empty"]["exact_match"] == 0.0
  assert rel["instruction_gain"]["exact_match"] == 100.0
  assert [c[0] for c in pred.calls][2] == ["", "", ""]
  assert all(c[1] == {"max_decode_len": 4} for c in pred.calls)


def test_without_controls_runs_once():
  pred = FollowsInstructions()
  out = sni_eval.evaluate(pred, RECORDS, controls=False)
  assert "reliance" not in out and len(pred.calls) == 1


def test_conflicting_instructions_rejected():
  bad = RECORDS + [{**RECORDS[0], "instruction": "Say maybe."}]
  with pytest.raises(ValueError, match="'t1' has more than one instruction"):
    sni_eval.task_instructions(bad)
