"""Held-out rank-classification evaluation (T0 style) built from SNI test tasks, and its accuracy.

Datasets RTE, CB, ANLI, COPA, WSC and Winogrande appear among the SNI test tasks; each task's
answer choices are its label set (the sorted distinct outputs of its instances). A prediction is
the answer choice with the highest score (sum of target log-likelihoods); choice counts may vary.
task033 (Winogrande answer generation) is left out: its outputs are free words, not labels.
"""
import collections
import os
from collections.abc import Iterator, Sequence

import numpy as np

from hint_jax.data import features as F
from hint_jax.data import sni_reader

HELDOUT_TASKS = {
    "rte": ("task1344_glue_entailment_classification",),
    "cb": ("task1388_cb_entailment",),
    "anli": ("task1385_anli_r1_entailment", "task1387_anli_r3_entailment"),
    "copa": ("task1393_superglue_copa_text_completion", "task828_copa_commonsense_cause_effect"),
    "wsc": ("task1390_wscfixed_coreference",),
    "winogrande": ("task1391_winogrande_easy_answer_generation",),
}
FORMATS = ("hint", "concat")


def label_set(task: sni_reader.SniTask) -> list[str]:
  """Sorted distinct outputs of the task's instances."""
  return sorted({out for inst in task.instances for out in inst.outputs})


def records(fmt: str = "hint", sni_dir: str | os.PathLike | None = None,
            max_instances: int = 100) -> Iterator[dict]:
  """Yields one record per test instance with `answer_choices` and the correct `label` index.

  HINT: instruction = "Definition: <def>", inputs = the instance input. Concat: inputs =
  "Definition: <def>\\n\\n<input>" (T0-style prompt) and an empty instruction.
  """
  if fmt not in FORMATS:
    raise ValueError(f"unknown rank-classification format {fmt!r}; available: {FORMATS}")
  for dataset, names in HELDOUT_TASKS.items():
    for name in names:
      task = sni_reader.read_task(name, sni_dir)
      choices = label_set(task)
      definition = "Definition: " + task.definition.strip()
      for inst in sni_reader.select_instances(task, "test", max_instances):
        inputs = inst.input.strip()
        instruction = definition
        if fmt == "concat":
          instruction, inputs = "", f"{definition}\n\n{inputs}"
        yield {F.INSTRUCTION: instruction, F.INPUTS: inputs, F.TARGETS: inst.outputs[0],
               "answer_choices": choices, "label": choices.index(inst.outputs[0]),
               "dataset": dataset, "task": name, "id": inst.id}


def expand_choices(examples: Sequence[dict], encode) -> list[dict]:
  """One scoring row per (example, answer choice); `targets` holds the choice's tokens + EOS.

  Args:
    examples: tokenized examples with `answer_choices` (strings) and `label`.
    encode: str -> list of token ids (no EOS), e.g. `Vocabulary.encode`.

  Returns:
    Rows with the example's features, `targets` replaced, plus `example_index`, `choice_index`.
  """
  rows = []
  for i, ex in enumerate(examples):
    for j, choice in enumerate(ex["answer_choices"]):
      row = dict(ex)
      row[F.TARGETS] = np.asarray(list(encode(choice)) + [F.EOS_ID], np.int32)
      row["example_index"], row["choice_index"] = i, j
      rows.append(row)
  return rows


def predictions(scores: Sequence[float], rows: Sequence[dict]) -> dict[int, int]:
  """Argmax choice per example from one score per row (ties -> the first choice)."""
  best: dict[int, tuple[float, int]] = {}
  for score, row in zip(scores, rows, strict=True):
    i, j = row["example_index"], row["choice_index"]
    if i not in best or score > best[i][0]:
      best[i] = (float(score), j)
  return {i: j for i, (_, j) in best.items()}


def accuracy(scores: Sequence[float], rows: Sequence[dict]) -> dict[str, float]:
  """Accuracy x100 per dataset (`accuracy_<dataset>`) and their unweighted mean (`accuracy`)."""
  preds = predictions(scores, rows)
  labels = {row["example_index"]: (row["label"], row["dataset"]) for row in rows}
  hits, counts = collections.Counter(), collections.Counter()
  for i, (label, dataset) in labels.items():
    counts[dataset] += 1
    hits[dataset] += preds[i] == label
  out = {f"accuracy_{d}": 100.0 * hits[d] / counts[d] for d in counts}
  out["accuracy"] = float(np.mean(list(out.values())))
  return out
