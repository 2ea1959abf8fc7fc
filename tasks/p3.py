"""SeqIO registrations of P3 (T0 prompts) and the held-out rank-classification evaluation.

`p3_hint` (masked promptsource template -> instruction, rendered prompt -> inputs) and `p3_concat`
(rendered prompt only): splits `train` / `validation`, read from $HINT_DATA_DIR/p3_sample, or
from the P3 tfrecord release (`<dir>/<task>/<split>.tfrecord-*`) when $HINT_P3_TFRECORDS is set.
`p3_heldout_rank_classification` (+ `_concat`): split `test`, SNI test tasks of RTE, CB, ANLI,
COPA, WSC and Winogrande with `answer_choices` and `label`.
`p3_{k}shot_{hint,concat,both}` (k = 1, 2, 4, 5): the original's `t0_train_{k}_shot`, k examples
of the same template with every example (`hint_jax/data/p3_few_shot.py`), splits as `p3_hint`.
"""
import functools

from hint_jax_tasks import common, metrics

from hint_jax.data import p3, p3_few_shot, paths, rank_classification

TFRECORDS_ENV_VAR = paths.ENV_VARS["p3_tfrecords"]


def _p3_records(split: str, fmt: str):
  """p3_sample jsonl by default; the P3 tfrecord release when $HINT_P3_TFRECORDS is set."""
  return p3.records(split, p3.P3Config(fmt=fmt, tfrecord_dir=paths.setting("p3_tfrecords")))


def _few_shot_records(split: str, num_shots: int, fmt: str):
  p3_cfg = p3.P3Config(tfrecord_dir=paths.setting("p3_tfrecords"))
  cfg = p3_few_shot.FewShotConfig(num_shots=num_shots, fmt=fmt, p3_config=p3_cfg)
  return p3_few_shot.records(split, cfg)


def few_shot_task_name(num_shots: int, fmt: str) -> str:
  return f"p3_{num_shots}shot_{fmt}"


def _rank_records(split: str, fmt: str):
  del split  # only "test"
  return rank_classification.records(fmt)


def register() -> None:
  """Registers the P3 training tasks (zero- and few-shot) and the rank-classification tasks."""
  for fmt in ("hint", "concat"):
    make = functools.partial(_p3_records, fmt=fmt)
    common.add_task(f"p3_{fmt}", common.function_source(make, ("train", "validation")),
                    metric_fns=[metrics.exact_match])
    suffix = "" if fmt == "hint" else "_concat"
    common.add_task(f"p3_heldout_rank_classification{suffix}",
                    common.function_source(functools.partial(_rank_records, fmt=fmt), ("test",)))
  for num_shots in p3_few_shot.SHOTS:
    for fmt in p3_few_shot.FORMATS:
      make = functools.partial(_few_shot_records, num_shots=num_shots, fmt=fmt)
      common.add_task(few_shot_task_name(num_shots, fmt),
                      common.function_source(make, ("train", "validation")),
                      metric_fns=[metrics.exact_match])


register()
