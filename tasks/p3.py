"""SeqIO registrations of P3 (T0 prompts) and the held-out rank-classification evaluation.

`p3_hint` (masked promptsource template -> instruction, rendered prompt -> inputs) and `p3_concat`
(rendered prompt only): splits `train` / `validation`, read from $HINT_DATA_DIR/p3_sample, or
from the P3 tfrecord release (`<dir>/<task>/<split>.tfrecord-*`) when $HINT_P3_TFRECORDS is set.
`p3_heldout_rank_classification` (+ `_concat`): split `test`, SNI test tasks of RTE, CB, ANLI,
COPA, WSC and Winogrande with `answer_choices` and `label`.
"""
import functools
import os

from hint_jax.data import p3, rank_classification
from tasks import common, metrics

TFRECORDS_ENV_VAR = "HINT_P3_TFRECORDS"


def _p3_records(split: str, fmt: str):
  """p3_sample jsonl by default; the P3 tfrecord release when $HINT_P3_TFRECORDS is set."""
  return p3.records(split, p3.P3Config(fmt=fmt, tfrecord_dir=os.environ.get(TFRECORDS_ENV_VAR)))


def _rank_records(split: str, fmt: str):
  del split  # only "test"
  return rank_classification.records(fmt)


def register() -> None:
  """Registers the P3 training tasks and the rank-classification evaluation tasks."""
  for fmt in ("hint", "concat"):
    make = functools.partial(_p3_records, fmt=fmt)
    common.add_task(f"p3_{fmt}", common.function_source(make, ("train", "validation")),
                    metric_fns=[metrics.exact_match])
    suffix = "" if fmt == "hint" else "_concat"
    common.add_task(f"p3_heldout_rank_classification{suffix}",
                    common.function_source(functools.partial(_rank_records, fmt=fmt), ("test",)))


register()
