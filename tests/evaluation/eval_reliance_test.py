"""Tests for instruction-reliance controls."""
import pytest

from hint_jax.evaluation import reliance

INSTRUCTIONS = {"t1": "Say yes.", "t2": "Say no.", "t3": "Count words.", "t4": "Reverse."}


@pytest.mark.parametrize("seed", range(5))
def test_other_is_a_derangement(seed):
  other = reliance.other_task_instructions(INSTRUCTIONS, seed)
  assert set(other) == set(INSTRUCTIONS)
  assert sorted(other.values()) == sorted(INSTRUCTIONS.values())
  assert all(other[t] != INSTRUCTIONS[t] for t in INSTRUCTIONS)
  assert other == reliance.other_task_instructions(INSTRUCTIONS, seed)


def test_run_controls_reports_gain():
  def evaluate(instr):  # fixed "model": right answer iff the true instruction is given
    correct = sum(instr[t] == INSTRUCTIONS[t] for t in instr)
    return {"rougeL": 100.0 * correct / len(instr) + 5.0, "exact_match": 10.0}
  report = reliance.run_controls(evaluate, INSTRUCTIONS)
  assert report["conditions"]["true"]["rougeL"] == 105.0
  assert report["conditions"]["other"]["rougeL"] == 5.0
  assert report["conditions"]["empty"]["rougeL"] == 5.0
  assert report["instruction_gain"] == {"rougeL": 100.0, "exact_match": 0.0}
  assert report["gain_over_empty"]["rougeL"] == 100.0
  assert "| instruction_gain | +100.00 | +0.00 |" in reliance.to_markdown(report)


def test_needs_two_tasks():
  with pytest.raises(ValueError, match="at least 2 tasks"):
    reliance.other_task_instructions({"t1": "x"})
