"""The `make demo` report: markdown tables, results.json and the score-vs-FLOPs plot."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from hint_jax.evaluation import plots

MODELS = ("hint", "concat")
# Instruction formats of the synthetic suite: name -> worked examples shown (`synthetic` formats).
FORMATS = {"def": 0, "def_2pos": 2}
FORMAT_LABELS = {"def": "Def", "def_2pos": "Def+2Pos"}
HELDOUT = ("heldout_paraphrase", "heldout_task")
SPLITS = ("validation",) + HELDOUT + ("sni_test",)
COLUMNS = ("model", "format", "seen EM", "held-out paraphrase EM", "held-out task EM",
           "SNI ROUGE-L", "MFLOPs/ex synthetic", "MFLOPs/ex SNI", "examples/s",
           "instruction gain")
NOTES = """Scores x100: exact match on the synthetic suite (seen tasks on new inputs, held-out
paraphrases, held-out tasks), official ROUGE-L on the SNI test subset (Def only). Format: Def is
the instruction alone; Def+2Pos adds two worked examples of the task, laid out as SNI Def+2Pos
(HINT: to the hypernetwork; concat: into every input). Each model is trained once on both formats.
MFLOPs/ex: analytic forward FLOPs per example at the held-out-task (synthetic) or SNI eval set's
mean lengths (HINT's hypernetwork amortised over the examples sharing an instruction). examples/s:
greedy decoding of the held-out-task split through the serving Predictor from a cold TaskParams
cache. Instruction gain: held-out exact match with the true instruction minus with another task's
instruction (mean of both held-out splits)."""


def rows(results: Mapping) -> list[tuple[str, str, Mapping]]:
  """(model, format, results) in table order: each format's HINT row, then its concat row."""
  return [(m, f, results["models"][m][f]) for f in FORMATS for m in MODELS
          if f in results["models"][m]]


def _cell(r: Mapping, split: str) -> str:
  return f"{r['true'][split]:.1f}" if split in r["true"] else "-"


def table_rows(results: Mapping) -> list[list[str]]:
  """One row per model and format: scores (true instruction), efficiency, instruction gain."""
  return [[m, FORMAT_LABELS[f], *(_cell(r, s) for s in SPLITS),
           *(f"{r['flops'][k] / 1e6:.2f}" if k in r["flops"] else "-" for k in ("synthetic", "sni")),
           f"{r['examples_per_s']:.1f}", f"{r['instruction_gain']:+.1f}"]
          for m, f, r in rows(results)]


def markdown_table(head: Sequence[str], rows_: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows_]) + "\n"


def write_report(results: Mapping, out_dir: str) -> str:
  """Writes report.md, results.json and score_vs_flops.png; returns the report path."""
  points = [plots.Point(FORMAT_LABELS[f], r["flops"]["synthetic"], r["heldout_em"], m)
            for m, f, r in rows(results)]
  plots.plot_score_vs_flops(points, os.path.join(out_dir, "score_vs_flops.png"),
                            title="tiny HINT vs concatenation, synthetic held-out splits",
                            ylabel="held-out exact match (mean of both splits)")
  with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  controls = [[m, FORMAT_LABELS[f], c, *(_cell({"true": r[c]}, s) for s in SPLITS)]
              for m, f, r in rows(results) for c in ("true", "other")]
  samples = [[m, FORMAT_LABELS[f], s, c, *(x.replace("\n", " ").replace("|", "/")[:60]
                                            for x in ex)]
             for m, f, r in rows(results) for s in HELDOUT for c in ("true", "other")
             for ex in r["samples"][s][c]]
  timings = ", ".join(f"{k} {v:.0f} s" for k, v in results["timings_s"].items())
  text = "\n".join([
      "# hint_jax demo report", "", f"Preset `{results['preset']}`. Wall time: {timings}.", "",
      "## Results", "", markdown_table(COLUMNS, table_rows(results)), NOTES, "",
      "![score vs FLOPs](score_vs_flops.png)", "", "## Instruction-reliance controls", "",
      markdown_table(("model", "format", "instruction", *SPLITS), controls),
      "## Sample predictions", "",
      markdown_table(("model", "format", "split", "instruction given", "instruction text",
                      "input", "target", "prediction"), samples),
      "## Configuration", "", "```json", json.dumps(results["config"], indent=1), "```", ""])
  path = os.path.join(out_dir, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path
