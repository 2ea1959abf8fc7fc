"""HINT vs the concatenation baseline on SNI Def+2Pos: FLOPs per example and measured examples/s.

Usage: .venv/bin/python benchmarks/efficiency.py --out FILE.json [--png FILE.png] [--quick]

Both models share one randomly initialised T5 backbone of the `--preset` size (default small)
with the committed 8k vocabulary; HINT adds the published small modules (adapter 64, prefix 30,
fusion). The same SNI test examples (the first `--tasks` test tasks, `--per_task` instances
each; inputs and instructions capped at `--max_input` tokens, 1024 by default) go through the
serving `Predictor` of each model: HINT gets the instruction and input separately (each task's
TaskParams and cached instruction keys/values generated once per pass, so the hypernetwork is
amortised over `--per_task` examples), the baseline the Tk-Instruct string. Each model batches
the examples in its own offline order (`_offline_order`: the baseline by input length, HINT by
task and then input length) with the same length buckets.
Timings exclude compilation (a warm-up pass runs first) and are the best of `--repeats` passes
in which the four runs are interleaved batch by batch.

Keys: `hint_vs_concat_throughput_def2pos` = HINT examples/s / baseline examples/s (greedy
generation); `hint_vs_concat_flops_def2pos` = HINT FLOPs/example / baseline FLOPs/example
(analytic, hypernetwork amortised over 100 examples per task, as SNI test tasks).
"""
import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax
import jax.numpy as jnp
import numpy as np

from hint_jax.data import features, sni_examples
from hint_jax.data import vocab as vocab_lib
from hint_jax.evaluation import flops, flops_table, plots, sni_eval, xla_flops
from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.serving import batching
from hint_jax.serving import predictor as predictor_lib
from hint_jax.t5 import config as t5_config

MAX_TARGET = 128
# Encoder input buckets of both models (the same list, cut at --max_input; each batch pads to the
# smallest that fits).
INPUT_BUCKETS = (64, 128, 192, 256, 384, 512, 768, 1024)
# Paper-reported SNI Def+2Pos ROUGE-L of the concatenation baseline (DESIGN §9).
TK_INSTRUCT = {"xl": 54.3, "xxl": 60.1}


def random_params(model: hint.HintModel, seed: int):
  """Host-drawn params with `init`'s shapes: N(0, 1/fan_in) kernels, unit norm scales."""
  batch = {features.ENCODER_INPUT_TOKENS: jnp.ones((1, 8), jnp.int32),
           features.DECODER_INPUT_TOKENS: jnp.ones((1, 4), jnp.int32)}
  shapes = hint.unbox(jax.eval_shape(model.init, jax.random.key(seed), batch))
  rng = np.random.default_rng(seed)
  d = model.config.t5.d_model

  def draw(s):
    if len(s.shape) == 1:
      return jnp.ones(s.shape, s.dtype)
    fan_in = s.shape[0] if (len(s.shape) == 2 or s.shape[0] == d) else s.shape[0] * s.shape[1]
    return jnp.asarray(rng.normal(0.0, fan_in ** -0.5, s.shape).astype(s.dtype))
  return jax.tree.map(draw, shapes)


def build_models(preset: str, vocab_size: int, seed: int, peft: spec.PeftConfig,
                 max_instruction_length: int = 1024, **t5_overrides):
  """(hint model, params, concat model, params) sharing one backbone."""
  t5 = t5_config.T5Config.preset(preset, vocab_size=vocab_size, **t5_overrides)
  hint_model = hint.HintModel(model_config.HintConfig(
      t5=t5, peft=peft, hypernet=hypernet_config.HypernetConfig(), fusion=True,
      max_instruction_length=max_instruction_length))
  concat_model = hint.HintModel(model_config.HintConfig(
      t5=t5, peft=spec.PeftConfig(None, None, None), hypernet=None, fusion=False))
  params = random_params(hint_model, seed)
  return hint_model, params, concat_model, {"backbone": params["backbone"]}


def load_records(num_pos: int, tasks: int, per_task: int, sni_dir=None) -> list[dict]:
  """The first `per_task` HINT-format records of each of the first `tasks` SNI test tasks."""
  cfg = sni_examples.SniConfig(num_pos=num_pos, fmt="hint", sni_dir=sni_dir)
  by_task: dict[str, list] = {}
  for r in sni_examples.records("test", cfg):
    by_task.setdefault(r["task"], []).append(r)
  names = list(by_task) if tasks <= 0 else list(by_task)[:tasks]
  return [r for n in names for r in by_task[n][:per_task if per_task > 0 else None]]


def measure_lengths(vocab, records: list[dict], max_input: int) -> flops.Lengths:
  """Mean token lengths (with EOS, capped as the models see them) of HINT and concat inputs."""
  def mean_len(texts, cap):
    return round(statistics.mean(len(t) for t in batching.tokenize(vocab, texts, cap)))
  instr = [r[features.INSTRUCTION] for r in records]
  inputs = [r[features.INPUTS] for r in records]
  return flops.Lengths(instruction=mean_len(instr, max_input), inputs=mean_len(inputs, max_input),
                       targets=mean_len([r[features.TARGETS] for r in records], MAX_TARGET),
                       concat_inputs=mean_len([i + x for i, x in zip(instr, inputs)], max_input))


def flops_section(preset: str, peft: spec.PeftConfig, lengths: dict, per_task: int,
                  use_xla: bool, vocab_size: int, cache_memory: bool = True) -> dict:
  """FLOPs of the measured models (the preset with our vocabulary size)."""
  cfg = t5_config.T5Config.preset(preset, vocab_size=vocab_size)
  hyper = hypernet_config.HypernetConfig()
  out = {}
  for fmt, ln in lengths.items():
    entry = {"lengths": dataclasses.asdict(ln)}
    rows = {"hint": flops.hint_flops(cfg, peft, hyper, ln, cache_memory=cache_memory),
            "concat": flops.concat_flops(cfg, ln)}
    if use_xla:
      rows["hint_xla"] = xla_flops.hint_flops(cfg, peft, hyper, ln, cache_memory=cache_memory)
      rows["concat_xla"] = xla_flops.concat_flops(cfg, ln)
    for name, b in rows.items():
      entry[name] = {"per_task": b.per_task, "per_example_n100": b.per_example(100),
                     f"per_example_n{per_task}": b.per_example(per_task)}
    out[fmt] = entry
  return out


def _timed(fn) -> tuple[float, object]:
  start = time.perf_counter()
  result = fn()
  return time.perf_counter() - start, result


def _offline_order(vocab, instructions: list[str], texts: list[str], enabled: bool) -> list[int]:
  """Offline batching order (fewer padded tokens), or identity.

  Each model's own best order: by encoder input length, and for a model that takes
  instructions (HINT), by task first (its instruction length, then text), so that a batch holds
  one task's examples and its decoder memory is that instruction, not the batch's longest one.
  """
  if not enabled:
    return list(range(len(texts)))
  lengths = [len(t) for t in vocab.encode_batch(texts)]
  instr_lengths = [len(t) for t in vocab.encode_batch(instructions)]
  return sorted(range(len(texts)), key=lambda i: (instr_lengths[i], instructions[i], lengths[i]))


def _batches(pred, ins, xs, tgt, mode, batch_size, decode, sort_by_length):
  """(order, [one closure per batch]) for one model and mode."""
  order = _offline_order(pred.vocab, ins, xs, sort_by_length)
  ins, xs, tgt = ([seq[i] for i in order] for seq in (ins, xs, tgt))

  def call(lo, hi):
    if mode == "generate":
      return pred.generate(ins[lo:hi], xs[lo:hi], **decode)
    return list(pred.score(ins[lo:hi], xs[lo:hi], tgt[lo:hi], MAX_TARGET))
  return order, [functools.partial(call, lo, hi) for lo, hi in batching.chunks(len(xs),
                                                                              batch_size)]


def throughput(hint_pred, concat_pred, records, batch_size: int, repeats: int,
               decode: dict, sort_by_length: bool = True) -> dict:
  """Best-of-`repeats` examples/s for generation and teacher-forced scoring.

  The four runs (HINT/concat x generate/score) are interleaved batch by batch, so load changes
  on a shared machine hit them alike. Each pass starts with empty TaskParams caches (HINT pays
  for every task's hypernetwork once per pass and mode). With `sort_by_length`, each model batches
  the examples in its own offline order (`_offline_order`: HINT by task, then input length; the
  baseline by input length).
  """
  instr = [r[features.INSTRUCTION] for r in records]
  inputs = [r[features.INPUTS] for r in records]
  targets = [r[features.TARGETS] for r in records]
  concat_inputs = [i + x for i, x in zip(instr, inputs)]
  # One HINT predictor (so one TaskParams cache) per mode: each pays for every task once.
  hint_preds = {"generate": hint_pred, "score": predictor_lib.Predictor(
      hint_pred.model, hint_pred.params, hint_pred.vocab, buckets=hint_pred.buckets,
      checkpoint_id=hint_pred.checkpoint_id, cache_memory=hint_pred.cache_memory)}
  runs = {}
  for mode in ("generate", "score"):
    runs[("hint", mode)] = _batches(hint_preds[mode], instr, inputs, targets, mode, batch_size,
                                    decode, sort_by_length)
    runs[("concat", mode)] = _batches(concat_pred, [""] * len(records), concat_inputs, targets,
                                      mode, batch_size, decode, sort_by_length)
  best, outputs = {}, {}
  for repeat in range(repeats + 1):  # pass 0 is the warm-up (compiles every bucket shape)
    for pred in hint_preds.values():
      pred.cache.clear_memory()
    seconds = dict.fromkeys(runs, 0.0)
    results = {key: [] for key in runs}
    for b in range(len(runs[("hint", "generate")][1])):
      for key, (_, calls) in runs.items():
        elapsed, out = _timed(calls[b])
        seconds[key] += elapsed
        results[key] += out
    if repeat == 0:
      outputs = {key: _restore(runs[key][0], out) for key, out in results.items()}
    else:
      best = {key: min(best.get(key, float("inf")), t) for key, t in seconds.items()}
  n = len(records)
  result = {f"{model}_{mode}_examples_per_s": n / s for (model, mode), s in best.items()}
  result["predictions"] = {"hint": outputs[("hint", "generate")],
                           "concat": outputs[("concat", "generate")]}
  return result


def _restore(order, out):
  restored = [None] * len(out)
  for position, i in enumerate(order):
    restored[i] = out[position]
  return restored


def _parse():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--png", default=None, help="plot path (default: --out with .png)")
  p.add_argument("--preset", default="small")
  p.add_argument("--tasks", type=int, default=8)
  p.add_argument("--per_task", type=int, default=16)
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--max_decode_len", type=int, default=16)
  p.add_argument("--max_input", type=int, default=1024,
                 help="token cap of every encoder/hypernetwork input (both models); the default "
                      "is the SNI length of gin_configs/runs/finetune_sni.gin (Tk-Instruct's "
                      "max source length): at 512, a quarter of the measured Def+2Pos baseline "
                      "inputs lose their end, i.e. the example's input")
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--sni_dir", default=None)
  p.add_argument("--no_xla", action="store_true", help="skip XLA cost analysis")
  p.add_argument("--no_cache_memory", action="store_true",
                 help="HINT's Predictor caches H_I instead of its cross-attention keys/values "
                      "(re-projects the instruction for every example)")
  p.add_argument("--arrival_order", action="store_true",
                 help="batch in (shuffled) arrival order instead of sorting by input length")
  p.add_argument("--quick", action="store_true", help="2 tasks x 4 examples, 1 repeat")
  return p.parse_args()


def _plot(path: str, preset: str, section: dict, rouge: dict) -> None:
  pts = [plots.Point(f"HINT {preset} (this run, untrained)",
                     section["def2pos"]["hint"]["per_example_n100"], rouge["hint"], "this run"),
         plots.Point(f"concat {preset} (this run, untrained)",
                     section["def2pos"]["concat"]["per_example_n100"], rouge["concat"],
                     "this run")]
  for size, score in TK_INSTRUCT.items():
    cfg = t5_config.T5Config.preset(size)  # the real T5 vocabulary (32128)
    f = flops.concat_flops(cfg, flops.Lengths(**section["def2pos"]["lengths"]))
    pts.append(plots.Point(f"Tk-Instruct {size} (paper)", f.per_example(1), score, "concat, paper"))
  plots.plot_score_vs_flops(pts, path, title="SNI Def+2Pos: ROUGE-L vs forward FLOPs/example")


def main() -> None:
  args = _parse()
  if args.quick:
    args.tasks, args.per_task, args.repeats = 2, 4, 1
  vocab = vocab_lib.get_vocabulary()
  peft = flops_table.published_peft(args.preset)
  all_def = load_records(0, 0, 0, args.sni_dir)
  all_pos = load_records(2, 0, 0, args.sni_dir)
  lengths = {"def": measure_lengths(vocab, all_def, args.max_input),
             "def2pos": measure_lengths(vocab, all_pos, args.max_input)}
  section = flops_section(args.preset, peft, lengths, args.per_task, not args.no_xla,
                          vocab.vocab_size, not args.no_cache_memory)
  records = load_records(2, args.tasks, args.per_task, args.sni_dir)
  random.Random(args.seed).shuffle(records)
  hint_model, hint_params, concat_model, concat_params = build_models(
      args.preset, vocab.vocab_size, args.seed, peft, args.max_input)
  # Both models share the length buckets; every shape used compiles in the warm-up pass.
  bucket_lengths = tuple(sorted({min(b, args.max_input) for b in INPUT_BUCKETS}))
  buckets = predictor_lib.Buckets(batch_sizes=(args.batch_size,), input_lengths=bucket_lengths,
                                  instruction_lengths=bucket_lengths,
                                  max_decode_len=args.max_decode_len)
  hint_pred = predictor_lib.Predictor(hint_model, hint_params, vocab, buckets=buckets,
                                      cache_memory=not args.no_cache_memory)
  concat_pred = predictor_lib.Predictor(concat_model, concat_params, vocab, buckets=buckets,
                                        concat_template="{instruction}{input}")
  measured = throughput(hint_pred, concat_pred, records, args.batch_size, args.repeats,
                        {"max_decode_len": args.max_decode_len}, not args.arrival_order)
  preds = measured.pop("predictions")
  rouge = {m: sni_eval.report(records, preds[m])["overall"]["rougeL"] for m in preds}
  png = args.png or os.path.splitext(args.out)[0] + ".png"
  _plot(png, args.preset, section, rouge)
  f = section["def2pos"]
  result = {
      "hint_vs_concat_throughput_def2pos": (measured["hint_generate_examples_per_s"]
                                            / measured["concat_generate_examples_per_s"]),
      "hint_vs_concat_score_throughput_def2pos": (measured["hint_score_examples_per_s"]
                                                  / measured["concat_score_examples_per_s"]),
      "hint_vs_concat_flops_def2pos": (f["hint"]["per_example_n100"]
                                       / f["concat"]["per_example_n100"]),
      "hint_vs_concat_flops_def": (section["def"]["hint"]["per_example_n100"]
                                   / section["def"]["concat"]["per_example_n100"]),
      "measured": measured, "rougeL_untrained": rouge, "flops": section,
      "setup": {**{k: v for k, v in vars(args).items()}, "examples": len(records),
                "peft": dataclasses.asdict(peft), "vocab_size": vocab.vocab_size},
      "plot": png, "date": datetime.datetime.now(datetime.UTC).isoformat(),
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
      "jax": jax.__version__, "device": str(jax.devices()[0]),
  }
  with open(args.out, "w", encoding="utf-8") as out:
    json.dump(result, out, indent=2)
  print(json.dumps({k: v for k, v in result.items() if k.startswith("hint_vs")}, indent=2))


if __name__ == "__main__":
  main()
