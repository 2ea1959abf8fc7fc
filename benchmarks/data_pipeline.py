"""Benchmark of the data pipeline: examples/s of the SNI HINT and synthetic-suite batch iterators.

    .venv/bin/python benchmarks/data_pipeline.py --out /tmp/data_pipeline.json

For each case: `load_s` (read + tokenize through SeqIO, once per process), `examples_per_s` of
steady-state batch production (converter + shuffle index), and the end-to-end rate of the first
epoch including the load.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import hint_jax_tasks  # noqa: F401  (registers the tasks read by name)

from hint_jax.data import features as F
from hint_jax.data import pipeline, synthetic

CASES = {
    "sni_def_2pos_hint": ("sni_def_2pos_hint", "train", "hint",
                          {F.INSTRUCTION: 512, F.INPUTS: 256, F.TARGETS: 64}),
    "synthetic_hint": ("synthetic_hint", "train", "hint", synthetic.FEATURE_LENGTHS),
    "synthetic_concat": ("synthetic_concat", "train", "concat", synthetic.CONCAT_FEATURE_LENGTHS),
}


def run_case(name: str, split: str, converter: str, lengths: dict, batch_size: int,
             steps: int) -> dict:
  """Times loading and `steps` batches of `batch_size`."""
  start = time.perf_counter()
  source = pipeline.load_source(name, split)
  load_s = time.perf_counter() - start
  it = pipeline.TrainIterator(source, lengths, batch_size, seed=0, converter=converter)
  next(it)  # first epoch order
  start = time.perf_counter()
  for _ in range(steps):
    next(it)
  run_s = time.perf_counter() - start
  rate = steps * batch_size / run_s
  epoch = source.epoch_size
  return {"task": name, "split": split, "converter": converter, "feature_lengths": lengths,
          "batch_size": batch_size, "steps": steps, "num_examples": epoch,
          "load_s": round(load_s, 3), "examples_per_s": round(rate, 1),
          "first_epoch_examples_per_s": round(epoch / (load_s + epoch / rate), 1),
          "truncated": dict(it.stats.truncated)}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--cases", default=",".join(CASES))
  args = parser.parse_args(argv)
  results = [run_case(*CASES[c], args.batch_size, args.steps) for c in args.cases.split(",")]
  report = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
                       f"python {platform.python_version()}",
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "results": results}
  with open(args.out, "w") as f:
    json.dump(report, f, indent=2)
  for r in results:
    print(f"{r['task']:>20}: load {r['load_s']:.1f} s, {r['examples_per_s']:.0f} examples/s "
          f"(first epoch incl. load {r['first_epoch_examples_per_s']:.0f}/s)")


if __name__ == "__main__":
  main(sys.argv[1:])
