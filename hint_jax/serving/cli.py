"""Command-line functions `infer_main` (jsonl in -> predictions out) and `flops_main` (FLOPs table)."""
from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

from hint_jax.serving import batching

_FIELDS = ("instruction", "input")


def _check_record(record) -> str | None:
  """What is wrong with one request record (None: nothing). Other fields (`id`, ...) pass
  through to the output unless they look like a misspelled `instruction` or `input`."""
  if not isinstance(record, dict):
    return "expected an object with string 'instruction' and 'input'"
  for key in record:
    close = difflib.get_close_matches(key, _FIELDS, n=1, cutoff=0.75)
    if key not in _FIELDS and close and close[0] not in record:
      return f"unknown field {key!r} (did you mean {close[0]!r}?)"
  if "input" not in record:
    return "expected an object with a string 'input' (missing field 'input')"
  if "instruction" not in record:
    return "missing field 'instruction' (use \"instruction\": \"\" for none)"
  for key in _FIELDS:
    if not isinstance(record[key], str):
      return f"{key!r} must be a string, got {type(record[key]).__name__}"
  return None


def _read_requests(path: str) -> list[dict]:
  """Records with string `instruction` ("" for none) and `input`; errors name file:line."""
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
      problem = _check_record(record)
      if problem:
        raise ValueError(f"{path}:{n}: {problem}")
      requests.append(record)
  return requests


def run_infer(predictor, requests: Sequence[dict], output_path: str, batch_size: int,
              progress: bool = True, **decode_options) -> dict:
  """Generates for every request and writes jsonl atomically (temp file, then rename).

  Returns:
    Throughput statistics: examples, seconds, examples_per_s, distinct_instructions, cache.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  from hint_jax.serving import task_params_io  # pylint: disable=g-import-not-at-top
  if batch_size < 1:
    raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
  start = time.perf_counter()
  directory = os.path.dirname(os.path.abspath(output_path))
  mode = task_params_io.new_file_mode(output_path)  # not mkstemp's 0600
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
    os.chmod(tmp, mode)
    os.replace(tmp, output_path)
  except BaseException:  # signals included (`terminate_on_signals` turns them into exceptions)
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  seconds = time.perf_counter() - start
  stats = predictor.cache.stats
  return {"examples": len(requests), "seconds": round(seconds, 3),
          "examples_per_s": round(len(requests) / seconds, 3) if seconds else None,
          "distinct_instructions": len({r["instruction"] for r in requests}),
          "truncated": dict(getattr(predictor, "truncated", {})),
          "cache": {"hits": stats.hits, "disk_hits": stats.disk_hits, "misses": stats.misses,
                    "evictions": stats.evictions,
                    "bad_entries": getattr(stats, "bad_entries", 0)}}


class Terminated(BaseException):
  """SIGTERM or SIGHUP arrived: unwinds like KeyboardInterrupt, so temp files are removed."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signum = signum


@contextlib.contextmanager
def terminate_on_signals(signums=(signal.SIGTERM, signal.SIGHUP)):
  """Raises `Terminated` in the main thread on these signals (their default kills the process
  without running any cleanup); the previous handlers come back on exit."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  def handler(signum, _frame):
    raise Terminated(signum)
  previous = {s: signal.signal(s, handler) for s in signums}
  try:
    yield
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


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
  p.add_argument("--instruction_vocab", default=None,
                 help="WordPiece vocab.txt (or its model folder) of a model whose instructions "
                      "a BERT encoder reads (models/instruction_encoder_minilm.gin)")
  p.add_argument("--no_progress", action="store_true")
  return p


# Numeric flags: (test, allowed range in words); checked before any file is read or written.
_FLAG_RANGES = {
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "max_decode_len": (lambda v: v >= 1, "an integer >= 1"),
    "num_beams": (lambda v: v >= 1, "an integer >= 1"),
    "temperature": (lambda v: 0 < v < math.inf, "a finite number > 0 (--method greedy for argmax)"),
    "top_k": (lambda v: v >= 0, "an integer >= 0 (0: no top-k filter)"),
    "top_p": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "seed": (lambda v: 0 <= v < 2**63, "an integer in [0, 2**63)"),
    "cache_mb": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "step": (lambda v: v is None or v >= 0, "an integer >= 0"),
}


def check_flags(args: argparse.Namespace) -> str | None:
  """The first invalid flag as one line (`--flag must be ..., got x`), or None."""
  for name, (test, allowed) in _FLAG_RANGES.items():
    value = getattr(args, name)
    if not test(value):  # NaN fails every comparison, so it is refused too
      return f"--{name} must be {allowed}, got {value}"
  for name in ("input", "output", "model_dir"):
    if not getattr(args, name):
      return f"--{name} must not be empty"
  if os.path.abspath(args.output) == os.path.abspath(args.input):
    return f"--output must differ from --input ({args.input} would be overwritten)"
  return None


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
  problem = check_flags(args)
  if problem:
    print(f"hint-jax infer: error: bad command line: {problem}", file=sys.stderr)
    return 2
  logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's read-only notices; errors are ours
  try:
    with terminate_on_signals():
      stats = _infer(args)
  except (OSError, ValueError, RuntimeError) as e:
    if isinstance(e, RuntimeError) and type(e).__name__ != "CorruptCheckpointError":
      raise  # a bug or a device failure keeps its traceback (orbax loads only on demand)
    print(f"hint-jax infer: error: {type(e).__name__}: {' '.join(str(e).split())}",
          file=sys.stderr)
    return 1
  except (KeyboardInterrupt, Terminated) as e:
    name = "SIGINT" if isinstance(e, KeyboardInterrupt) else str(e)
    print(f"hint-jax infer: error: interrupted by {name}; no output written to {args.output}",
          file=sys.stderr)
    return 128 + getattr(e, "signum", signal.SIGINT)
  print(json.dumps(stats), file=sys.stderr)
  return 0


def _infer(args: argparse.Namespace) -> dict:
  """Loads the model and runs the requests (flags already checked)."""
  from hint_jax.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  from hint_jax.serving import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  requests = _read_requests(args.input)
  extra = {}
  if args.instruction_vocab:
    from hint_jax.data import wordpiece  # pylint: disable=g-import-not-at-top
    extra["instruction_vocab"] = wordpiece.WordPieceVocabulary(args.instruction_vocab)
  predictor = predictor_lib.Predictor.from_checkpoint(
      args.model_dir, step=args.step, vocab=vocab_lib.get_vocabulary(args.vocab), **extra,
      cache_dir=args.cache_dir, cache_bytes=int(args.cache_mb * 2**20),
      cache_memory=not args.no_cache_memory,
      buckets=predictor_lib.Buckets(batch_sizes=tuple(sorted({1, 8, args.batch_size})),
                                    max_decode_len=args.max_decode_len))
  return run_infer(predictor, requests, args.output, args.batch_size,
                   progress=not args.no_progress, **_decode_options(args))


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
