"""SeqIO registrations of the no-instruction ablation (`hint_jax/data/no_instruction.py`).

`sni_def_noinstr`, `sni_def_1pos_noinstr`, `sni_def_2pos_noinstr`: the SNI `both` records (the
Tk-Instruct string as inputs, as the original's `natural_instructions_def_pos_2`) with one
constant hypernetwork text for every task; splits `train`, `validation`, `test`. `p3_noinstr`:
the P3 prompts with the same constant; splits `train`, `validation`.
"""
import functools

from hint_jax_tasks import common, metrics
from hint_jax_tasks import sni as sni_tasks

from hint_jax.data import no_instruction, p3, paths, sni_examples


def _sni_records(split: str, num_pos: int):
  cfg = sni_examples.SniConfig(num_pos=num_pos, fmt="both")
  return no_instruction.records(sni_examples.records(split, cfg))


def _p3_records(split: str):
  cfg = p3.P3Config(fmt="concat", tfrecord_dir=paths.setting("p3_tfrecords"))
  return no_instruction.records(p3.records(split, cfg))


def register() -> None:
  """Registers the no-instruction SNI and P3 tasks."""
  for num_pos in (0, 1, 2):
    make = functools.partial(_sni_records, num_pos=num_pos)
    common.add_task(sni_tasks.task_name(num_pos, "noinstr"),
                    common.function_source(make, sni_examples.SPLITS),
                    metric_fns=[metrics.sni_metrics], postprocess_fn=metrics.sni_postprocess)
  common.add_task("p3_noinstr", common.function_source(_p3_records, ("train", "validation")),
                  metric_fns=[metrics.exact_match])


register()
