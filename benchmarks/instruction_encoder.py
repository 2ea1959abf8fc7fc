"""HINT's instruction encoder: the backbone's own (published) vs pretrained all-MiniLM-L6-v2.

Usage: .venv/bin/python benchmarks/instruction_encoder.py --out FILE.json
           [--encoders shared,minilm] [--size s] [--seeds 0,1] [--reference SCORE_VS_FLOPS.json]
           [--minilm_dir DIR] [--finetune_steps N] [--quick]

Issue 15 item 5: does a pretrained sentence encoder help HINT on held-out paraphrases? For each
encoder and seed, HINT alone goes through the demo's pipeline at one benchmark size
(`score_vs_flops.SIZES`): hyper-pretraining, fine-tuning on the synthetic suite (Def and
Def+2Pos), then exact match on seen tasks, held-out paraphrases and held-out tasks in each format,
with analytic FLOPs per example (MiniLM's 22M parameters counted per task, amortised like the
rest of the hypernetwork). MiniLM stays frozen (its projection to d_model trains) and reads
WordPiece tokens; it needs the weights: `make minilm`, or `--minilm_dir`.

`--reference` takes the shared encoder's runs from a `score_vs_flops.py` JSON of the same size
and seeds instead of training them again (the demo is deterministic per seed on one machine);
the JSON then says so. Cost on a quiet 2-core machine: ~8 min per shared run, ~17 min per
MiniLM run (its forward over the 40 x 80 instruction table is ~0.6 s of each 1 s step).
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from score_vs_flops import SIZES

from hint_jax.data import vocab as vocab_lib
from hint_jax.run import demo, demo_eval
from hint_jax.run.demo_report import FORMAT_LABELS, FORMATS, HELDOUT

SPLITS = ("validation",) + HELDOUT


def run_hint(cfg: demo.DemoConfig, out_dir: str) -> dict:
  """Pretrains, fine-tunes and scores HINT alone; {format: scores and MFLOPs per example}."""
  start = time.perf_counter()
  vocab, cfgs = vocab_lib.get_vocabulary(), demo.model_configs(cfg)
  hint_vocab = demo.instruction_vocab(cfg, vocab)
  pre, _ = demo.pretrain_hint(cfg, cfgs["hint"], demo.pretrain_source(cfg, vocab, hint_vocab),
                              out_dir)
  source = demo.finetune_sources(cfg, vocab, hint_vocab)["hint"]
  flat, _ = demo.finetune(cfg, "hint", cfgs["hint"], source, pre, out_dir)
  records = demo_eval.all_eval_records(cfg)
  out = {"seconds": None}
  for name, k in FORMATS.items():
    recs = {s: records["hint"][name][s] for s in SPLITS}
    with demo_eval.tqdm.tqdm(total=2 * len(recs) + 1, desc=f"eval {name}") as bar:
      r = demo_eval.evaluate(cfg.seed, cfgs["hint"], flat, recs, bar, k, hint_vocab)
    concat = demo_eval.as_concat(records["concat"][name]["heldout_task"], "synthetic")
    mflops = demo_eval.flops_per_example(cfgs, recs["heldout_task"], vocab,
                                         concat_records=concat, instruction_vocab=hint_vocab)
    out[name] = {"seen_em": r["true"]["validation"],
                 **{f"{s}_em": r["true"][s] for s in HELDOUT},
                 "heldout_em": statistics.mean(r["true"][s] for s in HELDOUT),
                 "mflops_per_example": mflops["hint"] / 1e6}
  out["seconds"] = time.perf_counter() - start
  return out


def from_reference(path: str, size: str, seeds) -> dict:
  """{seed: {format: scores}} of HINT (shared encoder) from a score_vs_flops JSON."""
  with open(path, encoding="utf-8") as f:
    runs = json.load(f)["runs"]
  if size not in runs or any(str(s) not in runs[size] for s in seeds):
    raise ValueError(f"{path}: no runs of size {size!r} for seeds {list(seeds)}")
  return {s: {"seconds": runs[size][str(s)]["seconds"], **runs[size][str(s)]["hint"]}
          for s in seeds}


def table(results: dict, seeds) -> str:
  head = ("encoder", "format", "seen EM", "held-out paraphrase EM", "held-out task EM",
          "MFLOPs/ex", "per seed (paraphrase / task)")
  rows = []
  for enc, by_seed in results.items():
    for name in FORMATS:
      rs = [by_seed[s][name] for s in seeds]
      def mean(key, rs=rs):
        return f"{statistics.mean(r[key] for r in rs):.1f}"
      per_seed = "; ".join(f"{r['heldout_paraphrase_em']:.1f} / {r['heldout_task_em']:.1f}"
                           for r in rs)
      rows.append((enc, FORMAT_LABELS[name], mean("seen_em"), mean("heldout_paraphrase_em"),
                   mean("heldout_task_em"),
                   f"{statistics.mean(r['mflops_per_example'] for r in rs):.2f}", per_seed))
  return demo.markdown_table(head, rows)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="JSON results")
  parser.add_argument("--encoders", default="shared,minilm")
  parser.add_argument("--size", default="s", choices=sorted(SIZES))
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--reference", help="score_vs_flops JSON for the shared encoder's runs")
  parser.add_argument("--minilm_dir", default="", help="default: the installed package")
  parser.add_argument("--finetune_steps", type=int, default=None)
  parser.add_argument("--work_dir", default=None, help="checkpoints (default: a temp dir)")
  parser.add_argument("--quick", action="store_true", help="the demo's tiny preset budgets")
  args = parser.parse_args(argv)
  encoders = [e for e in args.encoders.split(",") if e]
  if any(e not in ("shared", "minilm") for e in encoders):
    parser.error("--encoders: choose from shared, minilm")
  seeds = [int(s) for s in args.seeds.split(",")]
  work = args.work_dir or tempfile.mkdtemp(prefix="instruction_encoder_")
  start, results = time.perf_counter(), {}
  for enc in encoders:
    if enc == "shared" and args.reference:
      results[enc] = from_reference(args.reference, args.size, seeds)
      continue
    for seed in seeds:
      print(f"\n##### encoder {enc}, size {args.size}, seed {seed} #####", flush=True)
      cfg = dataclasses.replace(
          demo.PRESETS["tiny" if args.quick else "demo"], **SIZES[args.size], seed=seed,
          instruction_encoder=enc, minilm_dir=args.minilm_dir,
          **({"finetune_steps": args.finetune_steps} if args.finetune_steps else {}))
      results.setdefault(enc, {})[seed] = run_hint(
          cfg, os.path.join(work, f"{enc}_{args.size}_seed{seed}"))
  result = {"command": " ".join(sys.argv), "date": datetime.datetime.now(
      datetime.UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "seconds": time.perf_counter() - start, "size": args.size,
            "seeds": seeds, "shared_from_reference": args.reference if "shared" in encoders
            else None, "runs": {e: {str(s): r for s, r in v.items()} for e, v in results.items()}}
  with open(args.out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print("\n" + table(results, seeds))
  print(f"results: {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
