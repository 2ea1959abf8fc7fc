"""Training throughput of HINT and the concatenation baseline: examples/s, tokens/s and MFU.

  python benchmarks/train_throughput.py --out /tmp/train_throughput.json [--steps 10]

MFU = (XLA cost-analysis FLOPs of one compiled train step per device / measured step time) /
(per-device peak FLOP/s measured on a large float32 matmul on the same device). Batches are random
tokens with the shapes of a real batch (HINT: instruction table + inputs; baseline: instruction
concatenated into the inputs), so the data pipeline is not part of the measurement.
"""
import argparse
import json
import platform
import sys
import time

import jax
import numpy as np

from hint_jax.data import features as F
from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config
from hint_jax.training import batches, loop, metrics, optim
from hint_jax.training import config as train_config


def _t5(args) -> t5_config.T5Config:
  return t5_config.T5Config(vocab_size=args.vocab, d_model=args.d_model, num_heads=args.heads,
                            head_dim=args.d_model // args.heads, d_ff=args.d_ff,
                            num_encoder_layers=args.layers, num_decoder_layers=args.layers,
                            dtype=args.dtype)


def models(args) -> dict[str, model_config.HintConfig]:
  t5 = _t5(args)
  return {
      "hint": model_config.HintConfig(
          t5=t5, peft=spec.PeftConfig(adapter_size=args.adapter, prefix_length=args.prefix),
          hypernet=hypernet_config.HypernetConfig(), max_instruction_length=args.instruction),
      "baseline": model_config.HintConfig(
          t5=t5, peft=spec.PeftConfig(adapter_size=None, prefix_length=None, lora=None),
          hypernet=None, fusion=False),
  }


def batch(name: str, args, rng: np.random.Generator) -> dict[str, np.ndarray]:
  b, tasks = args.batch, args.batch // args.examples_per_task
  tok = lambda *shape: rng.integers(3, args.vocab, shape).astype(np.int32)
  targets = tok(b, args.targets)
  out = {F.DECODER_TARGET_TOKENS: targets,
         F.DECODER_INPUT_TOKENS: np.pad(targets[:, :-1], ((0, 0), (1, 0))),
         F.DECODER_LOSS_WEIGHTS: np.ones_like(targets)}
  if name == "hint":
    out[F.ENCODER_INPUT_TOKENS] = tok(b, args.inputs)
    out[F.HYPER_ENCODER_INPUT_TOKENS] = tok(tasks, args.instruction)
    out[F.TASK_INDEX] = (np.arange(b) // args.examples_per_task).astype(np.int32)
  else:
    out[F.ENCODER_INPUT_TOKENS] = tok(b, args.instruction + args.inputs)
  return out


def measure(name: str, cfg: model_config.HintConfig, args, peak: float) -> dict:
  model = hint.HintModel(cfg)
  tcfg = train_config.TrainConfig(
      model_dir="/tmp/unused", train_steps=args.steps,
      optim=optim.OptimConfig(name="adafactor", learning_rate=1e-3),
      mesh=mesh_lib.MeshConfig(model_parallel=args.model_parallel, rules=args.rules))
  rng = np.random.default_rng(0)
  example = batch(name, args, rng)
  mesh = mesh_lib.build(tcfg.mesh)
  setup = loop.build_setup(tcfg, model, example, mesh)
  state = loop._fresh_state(tcfg, model, setup, example, None)  # pylint: disable=protected-access
  step_fn = loop.compile_step(tcfg, model, setup)
  device_batches = [batches.to_global(batch(name, args, rng), setup.batch_shardings)
                    for _ in range(4)]
  step_fn = step_fn.lower(state, device_batches[0]).compile()
  flops = metrics.compiled_flops(step_fn)
  for i in range(2):  # warm-up (compile + first runs)
    state, m = step_fn(state, device_batches[i % 4])
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for i in range(args.steps):
    state, m = step_fn(state, device_batches[i % 4])
  jax.block_until_ready((state, m))
  step_time = (time.perf_counter() - t0) / args.steps
  tokens = sum(int(np.count_nonzero(example[k])) for k in metrics.TOKEN_FEATURES if k in example)
  params = sum(x.size for x in jax.tree.leaves(state.params()))
  return {"examples_per_s": args.batch / step_time, "tokens_per_s": tokens / step_time,
          "step_time_s": step_time, "flops_per_step_per_device": flops,
          "mfu": (flops / step_time / peak) if flops else None, "params": int(params),
          "tokens_per_batch": tokens}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--examples_per_task", type=int, default=4)
  p.add_argument("--instruction", type=int, default=256)
  p.add_argument("--inputs", type=int, default=128)
  p.add_argument("--targets", type=int, default=32)
  p.add_argument("--vocab", type=int, default=8100)
  p.add_argument("--d_model", type=int, default=256)
  p.add_argument("--heads", type=int, default=4)
  p.add_argument("--d_ff", type=int, default=512)
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--adapter", type=int, default=64)
  p.add_argument("--prefix", type=int, default=30)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--model_parallel", type=int, default=1)
  p.add_argument("--rules", default="standard")
  p.add_argument("--matmul", type=int, default=2048, help="size of the peak-FLOP/s matmul")
  args = p.parse_args(argv)
  peak = metrics.measure_peak_flops(args.matmul, repeats=5)
  results = {name: measure(name, cfg, args, peak) for name, cfg in models(args).items()}
  report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
            "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
            "peak_flops_per_device": peak, "config": vars(args), "results": results}
  with open(args.out, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  print(json.dumps(report, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
