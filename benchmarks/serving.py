"""Cached TaskParams serving vs regenerating them for every batch: 1,000 requests, 50 instructions.

Usage: .venv/bin/python benchmarks/serving.py --out FILE.json [--quick]

Requests are (instruction, input) pairs of 50 SNI train tasks (Def format), drawn uniformly with
a fixed seed and served in arrival order in batches of `--batch_size`, greedy decoding. Modes:
  cached       `Predictor` with its TaskParams LRU (cold at the start of the pass, so the 50
               instructions are each encoded once inside the timing);
  no_cache     the same `Predictor` with a zero-byte cache: every batch regenerates the
               TaskParams of each distinct instruction it contains;
  per_example  what the original code did: every batch runs the instruction encoder and
               hypernetwork on one instruction row per example, then decodes (one jitted step).
The three modes are interleaved batch by batch (so load changes on a shared machine hit them
alike) and give identical outputs (checked). Timings exclude compilation: the first `--warmup`
requests are served untimed first; `compiles_during_timing` reports any shape compiled inside
the timed passes (inputs are capped at 256 tokens, instructions at 256).
"""
import argparse
import datetime
import json
import os
import platform
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import efficiency
import jax
import jax.numpy as jnp
import numpy as np

from hint_jax.data import features, sni_examples
from hint_jax.data import vocab as vocab_lib
from hint_jax.evaluation import flops_table
from hint_jax.serving import batching
from hint_jax.serving import predictor as predictor_lib


def request_stream(num_instructions: int, num_requests: int, seed: int) -> list[dict]:
  """`num_requests` records drawn uniformly from the first `num_instructions` SNI train tasks."""
  by_task: dict[str, list] = {}
  for r in sni_examples.records("train", sni_examples.SniConfig(num_pos=0, fmt="hint")):
    by_task.setdefault(r["task"], []).append(r)
    if len(by_task) > num_instructions:
      break
  pools = list(by_task.values())[:num_instructions]
  rng = random.Random(seed)
  return [rng.choice(rng.choice(pools)) for _ in range(num_requests)]


def per_example_fn(model):
  """Jitted original-code step: instruction table of one row per example, then generate."""
  def step(params, instr_BI, tokens_BL, max_decode_len):
    encoding = model.encode_task(params, instr_BI)
    return model.generate(params, encoding, tokens_BL, None, max_decode_len=max_decode_len)
  return jax.jit(step, static_argnames=("max_decode_len",))


def serve_per_example(step, pred, chunk, batch_size, max_decode_len):
  """One batch the original way: encode one instruction row per example, then decode."""
  instr_buckets = pred._instruction_buckets  # pylint: disable=protected-access
  instr = batching.tokenize(pred.vocab, [r[features.INSTRUCTION] for r in chunk],
                            instr_buckets[-1])
  instr_BI = batching.pad_to_bucket(instr, instr_buckets, batch_size)
  tokens_BL = pred._inputs([], [r[features.INPUTS] for r in chunk], batch_size)  # pylint: disable=protected-access
  out_BT = np.asarray(step(pred.params, jnp.asarray(instr_BI), tokens_BL, max_decode_len))
  return [pred.vocab.decode(out_BT[i]) for i in range(len(chunk))]


def serve(pred, chunk, max_decode_len):
  """One batch through a Predictor."""
  return pred.generate([r[features.INSTRUCTION] for r in chunk],
                       [r[features.INPUTS] for r in chunk], max_decode_len=max_decode_len)


def run_interleaved(modes: dict, requests: list[dict], batch_size: int) -> tuple[dict, dict]:
  """Serves every batch in every mode, round robin, so load changes hit the modes alike.

  Returns:
    ({mode: seconds}, {mode: outputs}).
  """
  seconds, outputs = dict.fromkeys(modes, 0.0), {m: [] for m in modes}
  for lo, hi in batching.chunks(len(requests), batch_size):
    for name, fn in modes.items():
      start = time.perf_counter()
      outputs[name] += fn(requests[lo:hi])
      seconds[name] += time.perf_counter() - start
  return seconds, outputs


def shape_probes(buckets: predictor_lib.Buckets) -> list[dict]:
  """One request per (instruction bucket, input bucket) pair, hitting exactly those lengths."""
  words = lambda n: " ".join(["a"] * (n - 1))  # "a" is one token; EOS makes n
  return [{features.INSTRUCTION: words(i), features.INPUTS: words(x)}
          for i in buckets.instruction_lengths for x in buckets.input_lengths]


def _compiles(pred, step) -> int:
  return (pred._generate._cache_size() + pred._encode_task._cache_size()  # pylint: disable=protected-access
          + step._cache_size())  # pylint: disable=protected-access


def _parse():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--preset", default="small")
  p.add_argument("--layers", type=int, default=2, help="encoder and decoder depth override")
  p.add_argument("--requests", type=int, default=1000)
  p.add_argument("--instructions", type=int, default=50)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--max_decode_len", type=int, default=8)
  p.add_argument("--warmup", type=int, default=200, help="requests served untimed first")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--quick", action="store_true", help="100 requests over 10 instructions")
  return p.parse_args()


def _models(args, vocab):
  return efficiency.build_models(args.preset, vocab.vocab_size, args.seed,
                                 flops_table.published_peft(args.preset),
                                 num_encoder_layers=args.layers, num_decoder_layers=args.layers)


def main() -> None:
  args = _parse()
  if args.quick:
    args.requests, args.instructions, args.warmup = 100, 10, 50
  vocab = vocab_lib.get_vocabulary()
  requests = request_stream(args.instructions, args.requests, args.seed)
  model, params, _, _ = _models(args, vocab)
  buckets = predictor_lib.Buckets(batch_sizes=(args.batch_size,), input_lengths=(64, 256),
                                  instruction_lengths=(128, 256),
                                  max_decode_len=args.max_decode_len)
  cached = predictor_lib.Predictor(model, params, vocab, buckets=buckets)
  no_cache = predictor_lib.Predictor(model, params, vocab, buckets=buckets, cache_bytes=0,
                                     checkpoint_id=cached.checkpoint_id)
  step = per_example_fn(model)
  modes = {"cached": lambda rs: serve(cached, rs, args.max_decode_len),
           "no_cache": lambda rs: serve(no_cache, rs, args.max_decode_len),
           "per_example": lambda rs: serve_per_example(step, cached, rs, args.batch_size,
                                                       args.max_decode_len)}
  warm = {k: modes[k] for k in ("cached", "per_example")}  # no_cache shares cached's programs
  run_interleaved(warm, shape_probes(buckets), 1)  # compiles every shape the stream can hit
  run_interleaved(warm, requests[:args.warmup], args.batch_size)
  cached.cache.clear_memory()  # cold cache: the 50 instructions are encoded inside the timing
  before = _compiles(cached, step)
  seconds, outputs = run_interleaved(modes, requests, args.batch_size)
  results = {m: {"seconds": t, "requests_per_s": len(requests) / t} for m, t in seconds.items()}
  stats = cached.cache.stats
  result = {
      "cached_vs_no_cache_speedup": results["no_cache"]["seconds"] / results["cached"]["seconds"],
      "cached_vs_per_example_speedup": (results["per_example"]["seconds"]
                                        / results["cached"]["seconds"]),
      "modes": results, "outputs_identical": outputs["cached"] == outputs["no_cache"]
      == outputs["per_example"],
      "compiles_during_timing": _compiles(cached, step) - before,
      "cache": {"hits": stats.hits, "misses": stats.misses, "bytes": cached.cache.num_bytes,
                "entries": len(cached.cache)},
      "setup": vars(args), "date": datetime.datetime.now(datetime.UTC).isoformat(),
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
      "jax": jax.__version__, "device": str(jax.devices()[0]),
  }
  with open(args.out, "w", encoding="utf-8") as out:
    json.dump(result, out, indent=2)
  print(json.dumps({k: result[k] for k in ("cached_vs_no_cache_speedup",
                                           "cached_vs_per_example_speedup", "outputs_identical",
                                           "compiles_during_timing")}, indent=2))


if __name__ == "__main__":
  main()
