"""Why the held-out-task scores differ: exact match per held-out task, from saved demo runs.

Usage: .venv/bin/python benchmarks/heldout_tasks.py --work_dir DIR [--runs s_seed0,s_seed1]
           [--out FILE.json]

Reads the runs `benchmarks/score_vs_flops.py --work_dir DIR` left behind (each run folder holds
`results.json` with its demo config and `models/{hint,concat}/checkpoints`), reloads both
fine-tuned models and scores each of the four held-out synthetic tasks separately, in Def and
Def+2Pos format, with the true instruction. Every held-out task is an operation the models were
trained on for the other kind of list (e.g. `second_words` is held out, `second_numbers` seen),
so a per-task table shows which transfers each model and seed makes, and whether a mean over
four tasks of 40 examples can separate the models at all. Evaluation only: ~2 min per run.
"""
import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hint_jax.data import features as F
from hint_jax.data import synthetic
from hint_jax.run import demo, demo_eval
from hint_jax.run.demo_report import FORMAT_LABELS, FORMATS, MODELS
from hint_jax.training import checkpoint


def per_task(run_dir: str) -> dict:
  """{model: {format: {task: EM, "samples": {task: [(input, target, prediction)]}}}}."""
  with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
    cfg = demo.DemoConfig(**json.load(f)["config"])
  cfgs, out = demo.model_configs(cfg), {}
  for model in MODELS:
    flat = dict(checkpoint.load_params(os.path.join(run_dir, "models", model, "checkpoints")))
    for name, k in FORMATS.items():
      recs = demo_eval.eval_records(cfg, k, "hint" if model == "hint" else "split")["heldout_task"]
      pred = demo_eval.make_predictor(cfgs[model], flat, template=synthetic.concat_template(k))
      predictions = pred.generate([r[F.INSTRUCTION] for r in recs], [r[F.INPUTS] for r in recs])
      by_task = collections.defaultdict(list)
      for r, p in zip(recs, predictions):
        by_task[r["task"]].append((r[F.INPUTS], r[F.TARGETS], p))
      out.setdefault(model, {})[name] = {
          "em": {t: synthetic.exact_match([x[1] for x in v], [x[2] for x in v])["exact_match"]
                 for t, v in by_task.items()},
          "samples": {t: v[:3] for t, v in by_task.items()}}
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", required=True, help="score_vs_flops.py's --work_dir")
  parser.add_argument("--runs", default="s_seed0,s_seed1", help="run folders inside it")
  parser.add_argument("--out", default=None, help="JSON results")
  args = parser.parse_args(argv)
  runs = {r: per_task(os.path.join(args.work_dir, r)) for r in args.runs.split(",") if r}
  tasks = [t.name for t in synthetic.tasks_for_split("heldout_task")]
  head = ("model", "format", "run", *tasks, "mean")
  rows = []
  for model in MODELS:
    for name in FORMATS:
      for run, res in runs.items():
        em = res[model][name]["em"]
        rows.append((model, FORMAT_LABELS[name], run, *(f"{em[t]:.1f}" for t in tasks),
                     f"{sum(em.values()) / len(em):.1f}"))
  print(demo.markdown_table(head, rows))
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(runs, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
