"""The FLOPs table: HINT vs concatenation, every size preset, SNI Def and Def+2Pos, analytic/XLA."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from hint_jax.evaluation import flops as flops_lib
from hint_jax.hypernet import config as hypernet_config
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config

# Examples per task over which the hypernetwork is amortised (SNI test tasks have 100).
DEFAULT_AMORTISE = (1, 10, 100)


def published_peft(preset: str) -> spec.PeftConfig:
  """The published HINT modules: adapter 512 / prefix 30 for XL and XXL, 64 / 30 below."""
  return spec.PeftConfig(adapter_size=512 if preset in ("xl", "xxl") else 64, prefix_length=30)


@dataclasses.dataclass(frozen=True)
class Row:
  """One (size, format, model) line; `xla` is None where it was not computed."""
  preset: str
  fmt: str
  model: str
  analytic: flops_lib.Breakdown
  xla: flops_lib.Breakdown | None

  def relative_error(self) -> float | None:
    """Max |xla/analytic - 1| over the per-task and per-example parts."""
    if self.xla is None:
      return None
    pairs = [(self.xla.per_example_fixed, self.analytic.per_example_fixed)]
    if self.analytic.per_task:
      pairs.append((self.xla.per_task, self.analytic.per_task))
    return max(abs(x / a - 1.0) for x, a in pairs)


def build_rows(presets: Sequence[str] = flops_lib.PRESETS,
               formats: Sequence[str] = ("def", "def2pos"),
               xla_presets: Sequence[str] = ("small",),
               lengths: dict[str, flops_lib.Lengths] | None = None) -> list[Row]:
  """Analytic FLOPs for every preset; XLA cost analysis as well for `xla_presets`."""
  from hint_jax.evaluation import xla_flops  # pylint: disable=g-import-not-at-top  # slow import
  lengths = flops_lib.SNI_LENGTHS if lengths is None else lengths
  hyper = hypernet_config.HypernetConfig()
  rows = []
  for preset in presets:
    cfg = t5_config.T5Config.preset(preset)
    peft = published_peft(preset)
    for fmt in formats:
      ln = lengths[fmt]
      use_xla = preset in xla_presets
      rows.append(Row(preset, fmt, "hint", flops_lib.hint_flops(cfg, peft, hyper, ln),
                      xla_flops.hint_flops(cfg, peft, hyper, ln) if use_xla else None))
      rows.append(Row(preset, fmt, "concat", flops_lib.concat_flops(cfg, ln),
                      xla_flops.concat_flops(cfg, ln) if use_xla else None))
  return rows


def _g(x: float) -> str:
  return f"{x / 1e9:.2f}"


def to_markdown(rows: Sequence[Row], amortise: Sequence[int] = DEFAULT_AMORTISE) -> str:
  """GFLOPs per example (analytic; XLA in brackets where computed) for each amortisation n."""
  head = ["size", "format", "model", "per-task GF"] + [f"GF/example n={n}" for n in amortise]
  head += ["XLA vs analytic"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [r.preset, r.fmt, r.model, _g(r.analytic.per_task)]
    for n in amortise:
      cell = _g(r.analytic.per_example(n))
      if r.xla is not None:
        cell += f" ({_g(r.xla.per_example(n))})"
      cells.append(cell)
    err = r.relative_error()
    cells.append("-" if err is None else f"{100 * err:.2f}%")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def to_json(rows: Sequence[Row], amortise: Sequence[int] = DEFAULT_AMORTISE) -> list[dict]:
  out = []
  for r in rows:
    entry = {"preset": r.preset, "format": r.fmt, "model": r.model,
             "analytic_per_task": r.analytic.per_task,
             "analytic_per_example": {str(n): r.analytic.per_example(n) for n in amortise}}
    if r.xla is not None:
      entry["xla_per_task"] = r.xla.per_task
      entry["xla_per_example"] = {str(n): r.xla.per_example(n) for n in amortise}
      entry["xla_relative_error"] = r.relative_error()
    out.append(entry)
  return out
