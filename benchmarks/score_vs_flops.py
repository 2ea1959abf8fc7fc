"""HINT vs concatenation: held-out exact match against inference FLOPs per example (paper fig. 1).

Usage: .venv/bin/python benchmarks/score_vs_flops.py --out FILE.json [--png FILE.png]
           [--sizes xs,s] [--seeds 0,1] [--finetune_steps N] [--quick]

For each model size (`SIZES`: the demo's backbone and two neighbours) and seed, the demo's
pipeline (`hint_jax.run.demo.run`: hyper-pretraining, then HINT and the concatenation baseline
fine-tuned with the same budget on the synthetic suite in Def and Def+2Pos formats) is run once;
both models are then scored in each format on the held-out tasks and held-out paraphrases
(exact match x100, mean of the two splits) and costed in analytic forward FLOPs per example at
the held-out-task set's mean lengths (HINT's hypernetwork amortised over the examples sharing an
instruction, `hint_jax.evaluation.flops`). Per (size, model, format): mean and range over seeds.

Keys of the JSON: `points` (one per size/model/format with `heldout_em` mean/min/max,
`heldout_task_em`, `heldout_paraphrase_em`, `mflops_per_example`), `runs` (every seed's scores),
and the two questions of issue 15 answered per size: `hint_minus_concat_heldout_task` (same
format) and `def2pos_gain` / `def2pos_extra_flops` of each model.
It is a benchmark, not a test: the defaults (sizes xs and s, the demo's budgets, two seeds) take
about 45 minutes on a quiet 2-core machine; `--sizes xs,s,m` adds a larger backbone (~2x the
time of s).
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hint_jax.evaluation import plots
from hint_jax.run import demo
from hint_jax.run.demo_report import FORMAT_LABELS, FORMATS, HELDOUT, MODELS

# Backbone sizes (both models; HINT's generated modules scale with them).
SIZES = {
    "xs": {"d_model": 32, "num_heads": 2, "d_ff": 64, "num_layers": 1, "adapter_size": 16,
           "prefix_length": 4},
    "s": {"d_model": 64, "num_heads": 4, "d_ff": 128, "num_layers": 2, "adapter_size": 32,
          "prefix_length": 8},
    "m": {"d_model": 128, "num_heads": 4, "d_ff": 256, "num_layers": 2, "adapter_size": 32,
          "prefix_length": 8},
}


def run_one(size: str, seed: int, args, out_dir: str) -> dict:
  """One demo run at `size` and `seed`; returns {model: {format: scores and FLOPs}}."""
  cfg = dataclasses.replace(
      demo.PRESETS["tiny" if args.quick else "demo"], **SIZES[size], seed=seed,
      **({"finetune_steps": args.finetune_steps} if args.finetune_steps else {}),
      **({"pretrain_steps": args.pretrain_steps} if args.pretrain_steps is not None else {}))
  start = time.perf_counter()
  results = demo.run(cfg, os.path.join(out_dir, f"{size}_seed{seed}"), f"bench_{size}")
  out = {"seconds": time.perf_counter() - start, "config": dataclasses.asdict(cfg)}
  for model in MODELS:
    for fmt in FORMATS:
      r = results["models"][model][fmt]
      out.setdefault(model, {})[fmt] = {
          "heldout_em": r["heldout_em"], **{f"{s}_em": r["true"][s] for s in HELDOUT},
          "seen_em": r["true"]["validation"], "instruction_gain": r["instruction_gain"],
          "mflops_per_example": r["flops"]["synthetic"] / 1e6}
  return out


def summarise(runs: dict, seeds) -> dict:
  """Mean and range over seeds per (size, model, format), and the issue's two comparisons."""
  points, answers = [], {}
  for size, by_seed in runs.items():
    for model in MODELS:
      for fmt in FORMATS:
        rs = [by_seed[s][model][fmt] for s in seeds]
        em = [r["heldout_em"] for r in rs]
        points.append({
            "size": size, "model": model, "format": fmt,
            "heldout_em": statistics.mean(em), "heldout_em_min": min(em),
            "heldout_em_max": max(em),
            **{f"{s}_em": statistics.mean(r[f"{s}_em"] for r in rs) for s in HELDOUT},
            "mflops_per_example": statistics.mean(r["mflops_per_example"] for r in rs)})
    mean = {(p["model"], p["format"]): p for p in points if p["size"] == size}
    answers[size] = {
        "hint_minus_concat_heldout_task": {
            f: mean["hint", f]["heldout_task_em"] - mean["concat", f]["heldout_task_em"]
            for f in FORMATS},
        "def2pos_gain": {m: mean[m, "def_2pos"]["heldout_em"] - mean[m, "def"]["heldout_em"]
                         for m in MODELS},
        "def2pos_extra_flops": {m: mean[m, "def_2pos"]["mflops_per_example"]
                                / mean[m, "def"]["mflops_per_example"] - 1 for m in MODELS}}
  return {"points": points, "answers": answers}


def plot(points, path: str) -> None:
  plots.plot_score_vs_flops(
      [plots.Point(p["size"], p["mflops_per_example"] * 1e6, p["heldout_em"],
                   f"{p['model']} {FORMAT_LABELS[p['format']]}",
                   low=p["heldout_em_min"], high=p["heldout_em_max"]) for p in points],
      path, title="synthetic suite, held-out tasks + paraphrases (mean, range over seeds)",
      ylabel="held-out exact match")


def table(points) -> str:
  head = ("size", "model", "format", "held-out EM (range)", "held-out task EM",
          "held-out paraphrase EM", "MFLOPs/ex")
  rows = [(p["size"], p["model"], FORMAT_LABELS[p["format"]],
           f"{p['heldout_em']:.1f} ({p['heldout_em_min']:.1f}-{p['heldout_em_max']:.1f})",
           f"{p['heldout_task_em']:.1f}", f"{p['heldout_paraphrase_em']:.1f}",
           f"{p['mflops_per_example']:.2f}") for p in points]
  return demo.markdown_table(head, rows)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="JSON results")
  parser.add_argument("--png", help="plot (default: next to --out)")
  parser.add_argument("--sizes", default="xs,s", help=f"comma list of {', '.join(SIZES)}")
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--finetune_steps", type=int, default=None,
                      help="fine-tuning steps per model (default: the demo's)")
  parser.add_argument("--pretrain_steps", type=int, default=None)
  parser.add_argument("--work_dir", default=None, help="checkpoints (default: a temp dir)")
  parser.add_argument("--quick", action="store_true", help="the demo's tiny preset budgets")
  args = parser.parse_args(argv)
  sizes = [s for s in args.sizes.split(",") if s]
  unknown = [s for s in sizes if s not in SIZES]
  if unknown:
    parser.error(f"--sizes: unknown {', '.join(unknown)}; choose from {', '.join(SIZES)}")
  seeds = [int(s) for s in args.seeds.split(",")]
  work = args.work_dir or tempfile.mkdtemp(prefix="score_vs_flops_")
  runs: dict = {}
  start = time.perf_counter()
  for size in sizes:
    for seed in seeds:
      print(f"\n##### size {size}, seed {seed} #####", flush=True)
      runs.setdefault(size, {})[seed] = run_one(size, seed, args, work)
  summary = summarise(runs, seeds)
  png = args.png or os.path.splitext(args.out)[0] + ".png"
  plot(summary["points"], png)
  result = {"command": " ".join(sys.argv), "date": datetime.datetime.now(
      datetime.UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "seconds": time.perf_counter() - start, "seeds": seeds,
            "sizes": {s: SIZES[s] for s in sizes}, **summary,
            "runs": {s: {str(k): v for k, v in r.items()} for s, r in runs.items()}}
  with open(args.out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print("\n" + table(summary["points"]))
  print(json.dumps(summary["answers"], indent=1))
  print(f"results: {args.out}\nplot:    {png}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
