"""SeqIO registrations of Super-NaturalInstructions: Def / Def+1Pos / Def+2Pos, HINT and concat.

Task names: `sni_def_hint`, `sni_def_1pos_hint`, `sni_def_2pos_hint` and the matching `*_concat`
(Tk-Instruct string as inputs); splits `train`, `validation` (dev tasks), `test`. Data come from
$HINT_DATA_DIR/sni (read when a split is first requested).
"""
import functools

from hint_jax_tasks import common, metrics

from hint_jax.data import sni_examples


def task_name(num_pos: int, fmt: str) -> str:
  return "sni_def" + (f"_{num_pos}pos" if num_pos else "") + f"_{fmt}"


def register() -> None:
  """Registers the six SNI tasks and the mixtures `sni_hint` / `sni_concat` (= Def+2Pos)."""
  for fmt in sni_examples.FORMATS:
    for num_pos in (0, 1, 2):
      cfg = sni_examples.SniConfig(num_pos=num_pos, fmt=fmt)
      make = functools.partial(lambda split, c: sni_examples.records(split, c), c=cfg)
      common.add_task(task_name(num_pos, fmt), common.function_source(make, sni_examples.SPLITS),
                      metric_fns=[metrics.sni_metrics], postprocess_fn=metrics.sni_postprocess)


register()
