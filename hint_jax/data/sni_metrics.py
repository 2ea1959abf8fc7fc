"""SNI metrics exactly as natural-instructions eval/automatic/evaluation.py (English track).

Per instance: the max over references of exact match (lower-case, drop `string.punctuation`,
collapse whitespace; articles kept) and of ROUGE-L F (rouge_score, stemmer on, default tokenizer).
Means x100 rounded to 4 decimals, overall, per task and per category. Pure Python (no TensorFlow).
"""
import collections
import functools
import string
from collections.abc import Sequence

from rouge_score import rouge_scorer

_PUNCT = frozenset(string.punctuation)


@functools.cache
def _scorer() -> rouge_scorer.RougeScorer:
  return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def normalize_answer(text: str) -> str:
  """Lower-cases, removes punctuation and collapses whitespace (SQuAD style, articles kept)."""
  return " ".join("".join(ch for ch in text.lower() if ch not in _PUNCT).split())


def exact_match(prediction: str, reference: str) -> bool:
  return normalize_answer(prediction) == normalize_answer(reference)


def rouge_l(prediction: str, reference: str) -> float:
  """ROUGE-L F-measure with the Porter stemmer."""
  return _scorer().score(target=reference, prediction=prediction)["rougeL"].fmeasure


def _max_over(metric, prediction: str, references: Sequence[str]) -> float:
  return max(float(metric(prediction, ref)) for ref in references)


def compute_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]]
                    ) -> dict[str, float]:
  """`{"exact_match", "rougeL"}` means over instances, x100, rounded to 4 decimals.

  Args:
    predictions: one string per instance.
    references: one list of reference strings per instance.
  """
  if len(predictions) != len(references):
    raise ValueError(f"# of predictions {len(predictions)} doesn't match # of references "
                     f"{len(references)}")
  if not references:
    raise ValueError("no instances to score")
  em = rouge = 0.0
  for pred, refs in zip(predictions, references):
    if isinstance(refs, str) or not refs:
      raise ValueError(f"references must be a non-empty list of strings, got {refs!r}")
    em += _max_over(exact_match, pred, refs)
    rouge += _max_over(rouge_l, pred, refs)
  n = len(references)
  return {"exact_match": round(100.0 * em / n, 4), "rougeL": round(100.0 * rouge / n, 4)}


def compute_grouped_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]],
                            groups: Sequence[str]) -> dict[str, float]:
  """`{"<metric>_for_<group>": value}` for each group, in order of first appearance."""
  if not len(predictions) == len(references) == len(groups):
    raise ValueError("predictions, references and groups differ in length")
  by_group = collections.defaultdict(lambda: ([], []))
  for pred, refs, group in zip(predictions, references, groups):
    by_group[group][0].append(pred)
    by_group[group][1].append(refs)
  results = {}
  for group, (preds, refs) in by_group.items():
    for metric, value in compute_metrics(preds, refs).items():
      results[f"{metric}_for_{group}"] = value
  return results


def category_key(category: str) -> str:
  """Official grouping key of a category: lower-cased, whitespace runs -> "_"."""
  return "_".join(category.lower().split())


def evaluate(predictions: Sequence[str], references: Sequence[Sequence[str]],
             tasks: Sequence[str] | None = None, categories: Sequence[str] | None = None
             ) -> dict[str, float]:
  """Overall metrics plus per-category and per-task ones when groups are given.

  Returns:
    `{"exact_match", "rougeL", "exact_match_for_<category>", ..., "rougeL_for_<task>", ...}`.
  """
  results = compute_metrics(predictions, references)
  if categories is not None:
    results.update(compute_grouped_metrics(predictions, references,
                                           [category_key(c) for c in categories]))
  if tasks is not None:
    results.update(compute_grouped_metrics(predictions, references, tasks))
  return results
