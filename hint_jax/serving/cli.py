"""Command-line functions `infer_main` (jsonl in -> predictions out) and `flops_main` (FLOPs table)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence

from hint_jax.serving import batching


def _read_requests(path: str) -> list[dict]:
  """Records with string `instruction` (optional, default "") and `input`; errors name file:line."""
  requests = []
  with open(path, "rb") as f:
    for n, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{n}: not valid UTF-8 (byte {e.start})") from None
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
      if not isinstance(record, dict) or not isinstance(record.get("input"), str):
        raise ValueError(f"{path}:{n}: expected an object with a string 'input'")  # noqa: TRY004
      if not isinstance(record.setdefault("instruction", ""), str):
        raise ValueError(f"{path}:{n}: 'instruction' must be a string")  # noqa: TRY004
      requests.append(record)
  return requests


def run_infer(predictor, requests: Sequence[dict], output_path: str, batch_size: int,
              progress: bool = True, **decode_options) -> dict:
  """Generates for every request and writes jsonl atomically (temp file, then rename).

  Returns:
    Throughput statistics: examples, seconds, examples_per_s, distinct_instructions, cache.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  directory = os.path.dirname(os.path.abspath(output_path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".infer-", suffix=".jsonl")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as out, tqdm(
        total=len(requests), unit="ex", disable=not progress, file=sys.stderr) as bar:
      for lo, hi in batching.chunks(len(requests), batch_size):
        chunk = requests[lo:hi]
        preds = predictor.generate([r["instruction"] for r in chunk], [r["input"] for r in chunk],
                                   **decode_options)
        for record, pred in zip(chunk, preds):
          out.write(json.dumps({**record, "prediction": pred}, ensure_ascii=False) + "\n")
        bar.update(len(chunk))
    os.replace(tmp, output_path)
  except BaseException:
    os.remove(tmp)
    raise
  seconds = time.perf_counter() - start
  stats = predictor.cache.stats
  return {"examples": len(requests), "seconds": round(seconds, 3),
          "examples_per_s": round(len(requests) / seconds, 3) if seconds else None,
          "distinct_instructions": len({r["instruction"] for r in requests}),
          "truncated": dict(getattr(predictor, "truncated", {})),
          "cache": {"hits": stats.hits, "disk_hits": stats.disk_hits, "misses": stats.misses,
                    "evictions": stats.evictions}}


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: bad command line: {message}\n")  # one line, no usage


def _infer_parser() -> argparse.ArgumentParser:
  p = _Parser(prog="hint-jax infer", description=(
      "Predict for a jsonl file of {instruction, input} records with a trained HINT model."))
  p.add_argument("--model_dir", required=True, help="trainer model directory")
  p.add_argument("--input", required=True, help="jsonl requests")
  p.add_argument("--output", required=True, help="jsonl predictions (written atomically)")
  p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--max_decode_len", type=int, default=64)
  p.add_argument("--method", choices=("greedy", "sample", "beam"), default="greedy")
  p.add_argument("--num_beams", type=int, default=4)
  p.add_argument("--temperature", type=float, default=1.0)
  p.add_argument("--top_k", type=int, default=0)
  p.add_argument("--top_p", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--cache_dir", default=None, help="on-disk TaskParams cache directory")
  p.add_argument("--cache_mb", type=float, default=1024.0, help="in-memory cache budget (MiB)")
  p.add_argument("--no_cache_memory", action="store_true",
                 help="cache the encoded instruction instead of its decoder keys/values "
                      "(smaller entries, more compute per example)")
  p.add_argument("--vocab", default=None, help="sentencepiece model (default: committed one)")
  p.add_argument("--no_progress", action="store_true")
  return p


def _decode_options(args: argparse.Namespace) -> dict:
  opts = {"method": args.method, "max_decode_len": args.max_decode_len, "seed": args.seed}
  if args.method == "beam":
    opts["num_beams"] = args.num_beams
  if args.method == "sample":
    opts.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
  return opts


def infer_main(argv: Sequence[str] | None = None) -> int:
  """`hint-jax infer`: returns the exit status (errors are one line on stderr, no output file)."""
  args = _infer_parser().parse_args(argv)
  logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's read-only notices; errors are ours
  try:
    from hint_jax.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    from hint_jax.serving import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
    requests = _read_requests(args.input)
    predictor = predictor_lib.Predictor.from_checkpoint(
        args.model_dir, step=args.step, vocab=vocab_lib.get_vocabulary(args.vocab),
        cache_dir=args.cache_dir, cache_bytes=int(args.cache_mb * 2**20),
        cache_memory=not args.no_cache_memory,
        buckets=predictor_lib.Buckets(batch_sizes=tuple(sorted({1, 8, args.batch_size})),
                                      max_decode_len=args.max_decode_len))
    stats = run_infer(predictor, requests, args.output, args.batch_size,
                      progress=not args.no_progress, **_decode_options(args))
  except (OSError, ValueError) as e:
    print(f"hint-jax infer: error: {type(e).__name__}: {' '.join(str(e).split())}",
          file=sys.stderr)
    return 1
  print(json.dumps(stats), file=sys.stderr)
  return 0


def _flops_parser() -> argparse.ArgumentParser:
  from hint_jax.evaluation import flops  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(prog="hint-jax flops", description=(
      "Per-example forward FLOPs of HINT vs the concatenation baseline (analytic; XLA cost "
      "analysis for --xla_presets), hypernetwork amortised over n examples per task."))
  p.add_argument("--presets", default=",".join(flops.PRESETS))
  p.add_argument("--formats", default="def,def2pos")
  p.add_argument("--xla_presets", default="small", help="comma list ('' for analytic only)")
  p.add_argument("--amortise", default="1,10,100", help="examples per task")
  p.add_argument("--json", default=None, help="also write the rows as JSON here")
  return p


def _csv(text: str) -> list[str]:
  return [t for t in text.split(",") if t]


def flops_main(argv: Sequence[str] | None = None) -> int:
  """`hint-jax flops`: prints the markdown FLOPs table; returns the exit status."""
  args = _flops_parser().parse_args(argv)
  from hint_jax.evaluation import flops_table  # pylint: disable=g-import-not-at-top
  try:
    amortise = [int(n) for n in _csv(args.amortise)]
    rows = flops_table.build_rows(_csv(args.presets), _csv(args.formats), _csv(args.xla_presets))
  except (KeyError, ValueError) as e:
    print(f"hint-jax flops: error: {' '.join(str(e).split())}", file=sys.stderr)
    return 1
  print(flops_table.to_markdown(rows, amortise), end="")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(flops_table.to_json(rows, amortise), f, indent=2)
  return 0
