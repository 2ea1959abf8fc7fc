"""SeqIO metric functions (targets, predictions) -> dict, built on hint_jax.data metrics."""
from collections.abc import Sequence

from hint_jax.data import sni_metrics as sni_metrics_lib
from hint_jax.data import synthetic


def exact_match(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Exact string match (surrounding whitespace ignored), x100."""
  return synthetic.exact_match(targets, predictions)


def sni_postprocess(output, example=None, is_target: bool = False):
  """Targets become {references, task, category} so the SNI metric can group; outputs pass."""
  if not is_target:
    return output
  decode = lambda v: v.decode("utf-8") if isinstance(v, bytes) else v
  return {"references": [decode(r) for r in example["references"]],
          "task": decode(example["task"]), "category": decode(example["category"])}


def sni_metrics(targets: Sequence[dict], predictions: Sequence[str]) -> dict[str, float]:
  """Official SNI exact match and ROUGE-L, overall, per category and per task."""
  return sni_metrics_lib.evaluate(predictions, [t["references"] for t in targets],
                                  tasks=[t["task"] for t in targets],
                                  categories=[t["category"] for t in targets])
