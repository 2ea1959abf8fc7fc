"""SeqIO registrations of the synthetic instruction suite (HINT and concatenation formats)."""
from hint_jax.data import features as F
from hint_jax.data import synthetic
from tasks import common, metrics


def _concat_records(split: str):
  for ex in synthetic.generate(split):
    yield {F.INSTRUCTION: "", F.INPUTS: f"{ex[F.INSTRUCTION]} {ex[F.INPUTS]}",
           F.TARGETS: ex[F.TARGETS], "task": ex["task"]}


def register() -> None:
  """Registers `synthetic_hint` and `synthetic_concat` (splits: `synthetic.SPLITS`)."""
  common.add_task("synthetic_hint",
                  common.function_source(synthetic.generate, synthetic.SPLITS),
                  metric_fns=[metrics.exact_match])
  common.add_task("synthetic_concat", common.function_source(_concat_records, synthetic.SPLITS),
                  metric_fns=[metrics.exact_match])


register()
