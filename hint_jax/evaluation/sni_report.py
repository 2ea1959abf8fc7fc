"""SNI evaluation report: exact match and ROUGE-L per task, per category and overall (JSON, markdown)."""
from __future__ import annotations

import collections
import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence

from hint_jax.data import sni_metrics

# (prediction, references) -> score in [0, 1] (max over references is the scorer's job).
Scorer = Callable[[str, Sequence[str]], float]
METRICS = ("exact_match", "rougeL")


@dataclasses.dataclass(frozen=True)
class ScoredExample:
  """One model output with what is needed to score and group it."""
  task: str
  prediction: str
  references: tuple[str, ...]
  category: str = ""
  id: str = ""


def _max_over(metric) -> Scorer:
  return lambda prediction, references: max(float(metric(prediction, r)) for r in references)


def default_scorers() -> dict[str, Scorer]:
  """The official SNI metrics (`hint_jax.data.sni_metrics`), max over references."""
  return {"exact_match": _max_over(sni_metrics.exact_match),
          "rougeL": _max_over(sni_metrics.rouge_l)}


def _mean(values: Sequence[float]) -> float:
  return 100.0 * sum(values) / len(values) if values else math.nan


def _summary(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
  out = {m: _mean([r[m] for r in rows]) for m in rows[0]} if rows else {}
  out["num_examples"] = len(rows)
  return out


def build_report(examples: Sequence[ScoredExample],
                 scorers: Mapping[str, Scorer] | None = None) -> dict:
  """Scores every example and averages over instances, as the official SNI `evaluation.py`.

  Args:
    examples: the predictions with their references, tasks and categories.
    scorers: metric name -> per-example scorer in [0, 1]; default `default_scorers()`.

  Returns:
    {"overall": {...}, "per_category": {cat: {...}}, "per_task": {task: {...}}}, each summary
    holding every metric x100 and `num_examples`.

  Raises:
    ValueError: no examples, or an example without references (named by task and id).
  """
  if not examples:
    raise ValueError("build_report: no examples to score")
  scorers = default_scorers() if scorers is None else scorers
  by_task, by_category, rows = (collections.defaultdict(list), collections.defaultdict(list), [])
  for ex in examples:
    if not ex.references:
      raise ValueError(f"example {ex.id!r} of task {ex.task!r} has no references")
    row = {name: float(fn(ex.prediction, ex.references)) for name, fn in scorers.items()}
    rows.append(row)
    by_task[ex.task].append(row)
    if ex.category:
      by_category[ex.category].append(row)
  return {"overall": _summary(rows),
          "per_category": {c: _summary(r) for c, r in sorted(by_category.items())},
          "per_task": {t: _summary(r) for t, r in sorted(by_task.items())}}


def _table(title: str, key_name: str, groups: Mapping[str, Mapping[str, float]],
           metrics: Sequence[str]) -> list[str]:
  lines = [f"## {title}", "", "| " + " | ".join([key_name, *metrics, "n"]) + " |",
           "|" + "---|" * (len(metrics) + 2)]
  for name, summary in groups.items():
    cells = [f"{summary[m]:.2f}" for m in metrics]
    lines.append("| " + " | ".join([name, *cells, str(summary["num_examples"])]) + " |")
  return lines + [""]


def to_markdown(report: Mapping, title: str = "SNI evaluation") -> str:
  """Markdown tables: overall, per category, per task."""
  metrics = [k for k in report["overall"] if k != "num_examples"]
  lines = [f"# {title}", ""]
  lines += _table("Overall", "split", {"all": report["overall"]}, metrics)
  if report["per_category"]:
    lines += _table("Per category", "category", report["per_category"], metrics)
  lines += _table("Per task", "task", report["per_task"], metrics)
  return "\n".join(lines)


def write_report(report: Mapping, json_path: str, markdown_path: str | None = None,
                 title: str = "SNI evaluation") -> None:
  """Writes the JSON report (and optionally its markdown rendering)."""
  with open(json_path, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, sort_keys=True)
  if markdown_path is not None:
    with open(markdown_path, "w", encoding="utf-8") as f:
      f.write(to_markdown(report, title))
