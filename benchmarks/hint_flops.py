"""Per-example forward FLOPs from XLA's cost analysis: HINT (hypernet amortised) vs concatenation.

HINT's cost of one example is `apply` (adapted encoder over the input, decoder cross-attending to
the fused instruction + input) plus the per-task `encode_task` (instruction encoder, pooling,
generators) divided by n, the number of examples sharing the instruction. The concatenation
baseline runs plain T5 over instruction + input for every example. Nothing is executed: the
functions are lowered on abstract (shape-only) params and compiled for the CPU, and the FLOPs
are read from `compiled.cost_analysis()`. The analytic count of `hint_jax.evaluation.flops` is
reported next to it as a cross-check.

Usage:
  .venv/bin/python benchmarks/hint_flops.py --out /tmp/hint_flops.json [--time --dtype bfloat16]
  (defaults: T5.1.1 small dims, adapter 64 / prefix 30, fusion on, input 128, targets 32,
   instructions 256 and 512, n = 1, 10, 100)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import jax
import jax.numpy as jnp

from hint_jax.data import features
from hint_jax.evaluation import flops as analytic
from hint_jax.models import baseline, hint
from hint_jax.models import config as model_config
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config

F = features


def _xla_flops(fn, *args) -> float:
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax returns one dict per computation
    cost = cost[0]
  return float(cost["flops"])


def _tokens(batch: int, length: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((batch, length), jnp.int32)


def _abstract_params(model: hint.HintModel, inputs: int, targets: int):
  batch = {F.ENCODER_INPUT_TOKENS: jnp.zeros((1, inputs), jnp.int32),
           F.DECODER_INPUT_TOKENS: jnp.zeros((1, targets), jnp.int32)}
  return hint.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), batch))


def hint_costs(cfg: model_config.HintConfig, instruction: int, inputs: int, targets: int,
               batch: int) -> dict:
  """XLA FLOPs of HINT: per task (encode_task) and per example (apply), each per row."""
  model = hint.HintModel(cfg)
  params = _abstract_params(model, inputs, targets)
  per_task = _xla_flops(model.encode_task, params, _tokens(batch, instruction)) / batch
  encoding = jax.eval_shape(model.encode_task, params, _tokens(batch, instruction))
  per_example = _xla_flops(model.apply, params, encoding, _tokens(batch, inputs),
                           _tokens(batch, targets)) / batch
  return {"per_task": per_task, "per_example_fixed": per_example}


def concat_cost(cfg: model_config.HintConfig, concat_inputs: int, targets: int,
                batch: int) -> float:
  model = hint.HintModel(baseline.concat_config(cfg.t5))
  params = _abstract_params(model, concat_inputs, targets)

  def forward(p, enc, dec):
    return model.forward(p, {F.ENCODER_INPUT_TOKENS: enc, F.DECODER_INPUT_TOKENS: dec})

  return _xla_flops(forward, params, _tokens(batch, concat_inputs),
                    _tokens(batch, targets)) / batch


def measure(cfg: model_config.HintConfig, instruction: int, inputs: int, targets: int,
            ns: tuple[int, ...], batch: int) -> dict:
  """One row of the report: HINT at each n against the baseline, XLA and analytic."""
  costs = hint_costs(cfg, instruction, inputs, targets, batch)
  concat = concat_cost(cfg, instruction + inputs, targets, batch)
  lengths = analytic.Lengths(instruction=instruction, inputs=inputs, targets=targets,
                             concat_inputs=instruction + inputs)
  # encode_task then apply, as in training: the fused H_I is projected per example.
  ana_hint = analytic.hint_flops(cfg.t5, cfg.peft, cfg.hypernet, lengths, cfg.fusion,
                                 cache_memory=False)
  ana_concat = analytic.concat_flops(cfg.t5, lengths).per_example(1)
  row = {"instruction": instruction, "inputs": inputs, "targets": targets,
         "xla": {"hint_per_task": costs["per_task"],
                 "hint_per_example_fixed": costs["per_example_fixed"], "concat": concat},
         "analytic": {"hint_per_task": ana_hint.per_task,
                      "hint_per_example_fixed": ana_hint.per_example_fixed,
                      "concat": ana_concat},
         "per_example": {}}
  for n in ns:
    hint_n = costs["per_example_fixed"] + costs["per_task"] / n
    row["per_example"][str(n)] = {"hint": hint_n, "concat": concat,
                                  "hint_over_concat": hint_n / concat,
                                  "analytic_hint": ana_hint.per_example(n)}
  return row


def _seconds(fn, *args, iters: int = 10) -> float:
  """Mean wall time of a jitted call after compilation and one warm-up."""
  compiled = jax.jit(fn).lower(*args).compile()
  jax.block_until_ready(compiled(*args))
  start = time.perf_counter()
  for _ in range(iters):
    out = compiled(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / iters


def measure_time(cfg: model_config.HintConfig, instruction: int, inputs: int, targets: int,
                 ns: tuple[int, ...], batch: int) -> dict:
  """Measured seconds per example on the default backend (random weights, random tokens)."""
  rng = jax.random.PRNGKey(0)
  tokens = lambda length: jax.random.randint(rng, (batch, length), 2, cfg.t5.vocab_size)
  init_batch = {F.ENCODER_INPUT_TOKENS: tokens(inputs), F.DECODER_INPUT_TOKENS: tokens(targets)}
  model = hint.HintModel(cfg)
  params = hint.unbox(jax.jit(model.init)(rng, init_batch))
  table = tokens(instruction)
  per_task = _seconds(model.encode_task, params, table) / batch
  encoding = jax.jit(model.encode_task)(params, table)
  per_example = _seconds(model.apply, params, encoding, tokens(inputs), tokens(targets)) / batch
  concat_model = hint.HintModel(baseline.concat_config(cfg.t5))
  concat_params = {"backbone": params["backbone"]}
  concat_batch = {F.ENCODER_INPUT_TOKENS: tokens(instruction + inputs),
                  F.DECODER_INPUT_TOKENS: tokens(targets)}
  concat = _seconds(concat_model.forward, concat_params, concat_batch) / batch
  return {"hint_per_task_s": per_task, "hint_per_example_fixed_s": per_example,
          "concat_s": concat,
          "per_example_s": {str(n): {"hint": per_example + per_task / n, "concat": concat}
                            for n in ns}}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="JSON file to write")
  parser.add_argument("--size", default="small", help="T5 preset")
  parser.add_argument("--adapter", type=int, default=64)
  parser.add_argument("--prefix", type=int, default=30)
  parser.add_argument("--inputs", type=int, default=128)
  parser.add_argument("--targets", type=int, default=32)
  parser.add_argument("--instructions", type=int, nargs="+", default=[256, 512])
  parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 100])
  parser.add_argument("--batch", type=int, default=2, help="rows per compiled call")
  parser.add_argument("--no_fusion", action="store_true")
  parser.add_argument("--time", action="store_true",
                      help="also measure seconds per example on the default backend")
  parser.add_argument("--dtype", default="float32", help="compute dtype (params stay float32)")
  args = parser.parse_args(argv)
  t5 = t5_config.T5Config.preset(args.size, dtype=args.dtype)
  cfg = model_config.HintConfig(
      t5=t5, peft=spec.PeftConfig(adapter_size=args.adapter, prefix_length=args.prefix),
      fusion=not args.no_fusion, max_instruction_length=max(args.instructions))
  start = time.time()
  rows = [measure(cfg, i, args.inputs, args.targets, tuple(args.n), args.batch)
          for i in args.instructions]
  if args.time:
    for row in rows:
      row["time"] = measure_time(cfg, row["instruction"], args.inputs, args.targets,
                                 tuple(args.n), args.batch)
  report = {"config": {"t5": dataclasses.asdict(t5), "peft": dataclasses.asdict(cfg.peft),
                       "fusion": cfg.fusion},
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "jax": jax.__version__, "backend": jax.default_backend(),
                        "device": str(jax.devices()[0].device_kind)},
            "seconds": round(time.time() - start, 1), "rows": rows}
  with open(args.out, "w") as f:
    json.dump(report, f, indent=1)
  for row in rows:
    for n, v in row["per_example"].items():
      print(f"I={row['instruction']:4d} n={n:>3s}: HINT {v['hint'] / 1e9:7.3f} GFLOPs/example, "
            f"concat {v['concat'] / 1e9:7.3f}, ratio {v['hint_over_concat']:.3f} "
            f"(analytic HINT {v['analytic_hint'] / 1e9:7.3f})")
    for n, v in row.get("time", {}).get("per_example_s", {}).items():
      print(f"I={row['instruction']:4d} n={n:>3s}: HINT {v['hint'] * 1e6:9.1f} us/example, "
            f"concat {v['concat'] * 1e6:9.1f} us/example, ratio {v['hint'] / v['concat']:.3f}")
  return report


if __name__ == "__main__":
  main()
