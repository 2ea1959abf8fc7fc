"""Instruction-reliance controls: score with the true, another task's, and an empty instruction."""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping

CONDITIONS = ("true", "other", "empty")

# task -> instruction to use for it -> {metric: score}
EvaluateFn = Callable[[Mapping[str, str]], Mapping[str, float]]


def other_task_instructions(instructions: Mapping[str, str], seed: int = 0) -> dict[str, str]:
  """Gives every task the instruction of a different task (a seeded derangement).

  Every task gets the instruction of a different task; the text can only coincide when two
  tasks share the same instruction.

  Raises:
    ValueError: fewer than two tasks (there is no "other" instruction).
  """
  tasks = sorted(instructions)
  if len(tasks) < 2:
    raise ValueError(f"other-task control needs at least 2 tasks, got {len(tasks)}")
  order = list(tasks)
  random.Random(seed).shuffle(order)
  # A cyclic shift of a random order is a derangement: every task gets the next task's text.
  return {task: instructions[order[(i + 1) % len(order)]] for i, task in enumerate(order)}


def control_instructions(instructions: Mapping[str, str], seed: int = 0
                         ) -> dict[str, dict[str, str]]:
  """The three conditions: {"true": ..., "other": ..., "empty": ...}, each task -> instruction."""
  return {"true": dict(instructions),
          "other": other_task_instructions(instructions, seed),
          "empty": {task: "" for task in instructions}}


def reliance_report(scores: Mapping[str, Mapping[str, float]]) -> dict:
  """Adds the gains to per-condition scores.

  Args:
    scores: condition ("true", "other", "empty") -> metric -> score.

  Returns:
    {"conditions": scores, "instruction_gain": {metric: true - other},
     "gain_over_empty": {metric: true - empty}}.
  """
  missing = [c for c in CONDITIONS if c not in scores]
  if missing:
    raise ValueError(f"reliance_report: missing conditions {missing}")
  metrics = [m for m in scores["true"] if m != "num_examples"]
  return {"conditions": {c: dict(scores[c]) for c in CONDITIONS},
          "instruction_gain": {m: scores["true"][m] - scores["other"][m] for m in metrics},
          "gain_over_empty": {m: scores["true"][m] - scores["empty"][m] for m in metrics}}


def run_controls(evaluate: EvaluateFn, instructions: Mapping[str, str], seed: int = 0) -> dict:
  """Runs `evaluate` under each condition and returns `reliance_report` of the results."""
  conditions = control_instructions(instructions, seed)
  return reliance_report({c: evaluate(conditions[c]) for c in CONDITIONS})


def to_markdown(report: Mapping) -> str:
  """One table: a row per condition plus the two gain rows."""
  metrics = list(report["instruction_gain"])
  lines = ["| condition | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 1)]
  for c in CONDITIONS:
    lines.append(f"| {c} | " + " | ".join(f"{report['conditions'][c][m]:.2f}" for m in metrics)
                 + " |")
  for name in ("instruction_gain", "gain_over_empty"):
    lines.append(f"| {name} | " + " | ".join(f"{report[name][m]:+.2f}" for m in metrics) + " |")
  return "\n".join(lines) + "\n"
