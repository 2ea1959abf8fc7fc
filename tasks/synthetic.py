"""SeqIO registrations of the synthetic instruction suite (HINT and concatenation formats).

`synthetic_hint` / `synthetic_concat` are Def; `synthetic_def_2pos_hint` /
`synthetic_def_2pos_concat` show two worked examples of the task with the instruction, laid out
as the SNI Def+2Pos tasks are (`hint_jax.data.synthetic`, "Formats").
"""
import functools

from hint_jax_tasks import common, metrics

from hint_jax.data import synthetic


def _records(split: str, num_pos: int, fmt: str):
  return synthetic.generate(split, num_pos=num_pos, fmt=fmt)


def register() -> None:
  """Registers `synthetic_{,def_2pos_}{hint,concat}` (splits: `synthetic.SPLITS`)."""
  for num_pos in synthetic.NUM_POS:
    for fmt in ("hint", "concat"):
      prefix = f"def_{num_pos}pos_" if num_pos else ""
      name = f"synthetic_{prefix}{fmt}"
      common.add_task(name, common.function_source(
          functools.partial(_records, num_pos=num_pos, fmt=fmt), synthetic.SPLITS),
                      metric_fns=[metrics.exact_match])


register()
