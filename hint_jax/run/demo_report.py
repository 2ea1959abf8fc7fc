"""The `make demo` report: markdown tables, results.json and the score-vs-FLOPs plot."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from hint_jax.evaluation import plots

MODELS = ("hint", "concat")
HELDOUT = ("heldout_paraphrase", "heldout_task")
SPLITS = ("validation",) + HELDOUT + ("sni_test",)
COLUMNS = ("model", "seen EM", "held-out paraphrase EM", "held-out task EM", "SNI ROUGE-L",
           "MFLOPs/ex synthetic", "MFLOPs/ex SNI", "examples/s", "instruction gain")
NOTES = """Scores x100: exact match on the synthetic suite (seen tasks on new inputs, held-out
paraphrases, held-out tasks), official ROUGE-L on the SNI test subset (Def). MFLOPs/ex: analytic
forward FLOPs per example at the eval sets' mean lengths (HINT's hypernetwork amortised over the
examples sharing an instruction). examples/s: greedy decoding of the held-out-task split through
the serving Predictor from a cold TaskParams cache. Instruction gain: held-out exact match with
the true instruction minus with another task's instruction (mean of both held-out splits)."""


def table_rows(results: Mapping) -> list[list[str]]:
  """One row per model: scores (true instruction), efficiency and the instruction gain."""
  return [[m, *(f"{r['true'][s]:.1f}" for s in SPLITS),
           *(f"{r['flops'][k] / 1e6:.2f}" for k in ("synthetic", "sni")),
           f"{r['examples_per_s']:.1f}", f"{r['instruction_gain']:+.1f}"]
          for m, r in ((m, results["models"][m]) for m in MODELS)]


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"


def write_report(results: Mapping, out_dir: str) -> str:
  """Writes report.md, results.json and score_vs_flops.png; returns the report path."""
  models = results["models"]
  points = [plots.Point(m, models[m]["flops"]["synthetic"], models[m]["heldout_em"], m)
            for m in MODELS]
  plots.plot_score_vs_flops(points, os.path.join(out_dir, "score_vs_flops.png"),
                            title="tiny HINT vs concatenation, synthetic held-out splits",
                            ylabel="held-out exact match (mean of both splits)")
  with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  controls = [[m, c, *(f"{models[m][c][s]:.1f}" for s in SPLITS)]
              for m in MODELS for c in ("true", "other")]
  samples = [[m, s, c, *(x.replace("\n", " ").replace("|", "/")[:60] for x in ex)]
             for m in MODELS for s in HELDOUT for c in ("true", "other")
             for ex in models[m]["samples"][s][c]]
  timings = ", ".join(f"{k} {v:.0f} s" for k, v in results["timings_s"].items())
  text = "\n".join([
      "# hint_jax demo report", "", f"Preset `{results['preset']}`. Wall time: {timings}.", "",
      "## Results", "", markdown_table(COLUMNS, table_rows(results)), NOTES, "",
      "![score vs FLOPs](score_vs_flops.png)", "", "## Instruction-reliance controls", "",
      markdown_table(("model", "instruction", *SPLITS), controls), "## Sample predictions", "",
      markdown_table(("model", "split", "instruction given", "instruction text", "input",
                      "target", "prediction"), samples),
      "## Configuration", "", "```json", json.dumps(results["config"], indent=1), "```", ""])
  path = os.path.join(out_dir, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path
