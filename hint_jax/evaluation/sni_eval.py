"""Run SNI evaluation (report and instruction-reliance controls) through a serving `Predictor`."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hint_jax.data import features
from hint_jax.evaluation import reliance, sni_report


def task_instructions(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
  """task -> its instruction (HINT-format records: one instruction per task).

  Raises:
    ValueError: a task carries two different instructions.
  """
  out: dict[str, str] = {}
  for r in records:
    previous = out.setdefault(r["task"], r[features.INSTRUCTION])
    if previous != r[features.INSTRUCTION]:
      raise ValueError(f"task {r['task']!r} has more than one instruction")
  return out


def predict(predictor, records: Sequence[Mapping[str, Any]],
            instructions: Mapping[str, str] | None = None, **decode_options) -> list[str]:
  """Predictions for HINT-format records, optionally with each task's instruction replaced."""
  texts = [r[features.INSTRUCTION] if instructions is None else instructions[r["task"]]
           for r in records]
  return predictor.generate(texts, [r[features.INPUTS] for r in records], **decode_options)


def report(records: Sequence[Mapping[str, Any]], predictions: Sequence[str],
           scorers=None) -> dict:
  """`sni_report.build_report` of predictions for records with `references`, task, category."""
  examples = [sni_report.ScoredExample(task=r["task"], prediction=p,
                                       references=tuple(r["references"]),
                                       category=r.get("category", ""), id=str(r.get("id", "")))
              for r, p in zip(records, predictions, strict=True)]
  return sni_report.build_report(examples, scorers)


def evaluate(predictor, records: Sequence[Mapping[str, Any]], *, controls: bool = True,
             seed: int = 0, scorers=None, **decode_options) -> dict:
  """SNI report with the true instructions, plus the reliance controls when `controls`.

  Returns:
    {"report": per task/category/overall, "reliance": reliance report (overall metrics)}.
  """
  true = task_instructions(records)
  if not controls or len(true) < 2:
    return {"report": report(records, predict(predictor, records, **decode_options), scorers)}
  conditions = reliance.control_instructions(true, seed)
  reports = {c: report(records, predict(predictor, records, conditions[c], **decode_options),
                       scorers) for c in reliance.CONDITIONS}
  overall = {c: r["overall"] for c, r in reports.items()}
  return {"report": reports["true"], "reliance": reliance.reliance_report(overall)}
