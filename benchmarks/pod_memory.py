"""Per-device memory and communication of the real train step on a simulated TPU pod slice.

  python benchmarks/pod_memory.py --model xl --devices 64 --model_parallel 8 --rules standard \
      --batch 1024 --microbatches 16 --remat full --out /tmp/pod_xl.json

Shape-only: the exact train step of `hint-jax train` (the same gin files -- models/<hint|concat>
_<size>.gin, runs/finetune_sni.gin, mesh/data_model.gin or mesh/fsdp.gin -- and the same code
path, `training.loop.lower_step`) is lowered from ShapeDtypeStructs and compiled for `--devices`
simulated CPU devices; nothing is allocated. Reported per device, from XLA's
`memory_analysis()`: arguments, outputs, aliased bytes, temporaries and the peak
(arguments + outputs - aliases + temp); the compile time; and from the optimised (post-SPMD) HLO
the bytes each kind of collective moves per step (result bytes per device, ops inside loops
counted once per trip) and the number of sharding constraints in the lowered program.

The CPU compiler is not the TPU compiler: its buffer assignment and fusion differ, so treat the
peak as an estimate of what a TPU needs (usually an upper bound: CPU fuses less).
"""
import argparse
import json
import os
import platform
import re
import sys
import time


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", default="xl", help="size: small, base, large, xl, xxl")
  p.add_argument("--concat", action="store_true", help="the concatenation baseline instead")
  p.add_argument("--devices", type=int, default=64)
  p.add_argument("--model_parallel", type=int, default=8)
  p.add_argument("--rules", default="standard", choices=("standard", "fsdp"))
  p.add_argument("--batch", type=int, default=1024, help="global batch size")
  p.add_argument("--microbatches", type=int, default=16)
  p.add_argument("--remat", default="full", choices=("none", "minimal", "full"))
  p.add_argument("--dtype", default="bfloat16")
  p.add_argument("--task_rows", type=int, default=None,
                 help="instruction-table rows per host batch (default: one per example)")
  p.add_argument("--gin", action="append", default=[], help="extra gin binding KEY=VALUE")
  p.add_argument("--gin_file", action="append", default=[],
                 help="extra gin file after the others, e.g. models/instruction_encoder_minilm.gin")
  p.add_argument("--out", default=None, help="write the result as JSON here")
  p.add_argument("--hlo_out", default=None, help="write the optimised (post-SPMD) HLO here")
  return p.parse_args(argv)


def _gin_files(args) -> list[str]:
  model = f"models/concat_{args.model}.gin" if args.concat else f"models/hint_{args.model}.gin"
  mesh = "mesh/fsdp.gin" if args.rules == "fsdp" else "mesh/data_model.gin"
  return [model, "runs/finetune_sni.gin", mesh, *args.gin_file]


def _bindings(args) -> list[str]:
  out = ["MODEL_DIR='/tmp/pod_memory_unused'", f"BATCH_SIZE={args.batch}",
         f"MODEL_PARALLEL={args.model_parallel}",
         f"t5_config.T5Config.dtype='{args.dtype}'",
         f"t5_config.T5Config.remat_policy='{args.remat}'",
         f"train_config.TrainConfig.num_microbatches={args.microbatches}"]
  if args.concat:
    out += ["CONVERTER='concat'", "MIXTURE_OR_TASK_NAME='sni_def_2pos_concat'"]
  return out + list(args.gin)


def _resolve(name: str):
  import gin  # pylint: disable=import-outside-toplevel
  value = gin.query_parameter(name)
  while isinstance(value, gin.config.ConfigurableReference):
    value = value.scoped_configurable_fn() if value.evaluate else value.scoped_configurable_fn
  return value


def _example(data_cfg, concat: bool, task_rows: int | None):
  """ShapeDtypeStructs of one host batch as the data pipeline yields it."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from hint_jax.data import features as F  # pylint: disable=import-outside-toplevel
  lengths, b = data_cfg.task_feature_lengths, data_cfg.batch_size
  s = lambda *shape, dtype=np.int32: jax.ShapeDtypeStruct(shape, dtype)
  out = {F.ENCODER_INPUT_TOKENS: s(b, lengths["inputs"]),
         F.DECODER_INPUT_TOKENS: s(b, lengths["targets"]),
         F.DECODER_TARGET_TOKENS: s(b, lengths["targets"]),
         F.DECODER_LOSS_WEIGHTS: s(b, lengths["targets"], dtype=np.float32)}
  if not concat:
    out[F.HYPER_ENCODER_INPUT_TOKENS] = s(task_rows or b, lengths["instruction"])
    out[F.TASK_INDEX] = s(b)
  return out


_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8,
                "pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2}


def _shape_bytes(text: str) -> int:
  """Bytes of every array shape like `bf16[8,1024]{1,0}` in `text` (tuples summed)."""
  total = 0
  for dtype, dims in re.findall(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]", text):
    if dtype in _DTYPE_BYTES:
      n = 1
      for d in filter(None, dims.split(",")):
        n *= int(d)
      total += n * _DTYPE_BYTES[dtype]
  return total


def collective_bytes(hlo: str) -> dict[str, dict[str, float]]:
  """{kind: {"ops": static count, "bytes": per-step result bytes}} of an optimised HLO module.

  Ops inside while loops count once per trip (XLA's `known_trip_count`, else once).
  """
  bodies: dict[str, list[str]] = {}
  name = entry = None
  for line in hlo.splitlines():
    # Computation headers start in column 0 (instructions are indented); their parameter
    # types may hold `/*index=5*/` comments, so no test on "=".
    m = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
    if m:
      name = m.group(1)
      bodies[name] = []
      entry = name if line.lstrip().startswith("ENTRY") else entry
    elif name is not None:
      bodies[name].append(line)
  calls: dict[str, list[tuple[str, int]]] = {k: [] for k in bodies}
  for comp, lines in bodies.items():
    for line in lines:
      trips = 1
      t = re.search(r'known_trip_count"?:\{"n":"(\d+)"', line)
      if t and " while(" in line:
        trips = int(t.group(1))
      for callee in re.findall(r"(?:body|condition|calls|to_apply|branch_computations)="
                               r"\{?%?([\w.\-]+)", line):
        calls[comp].append((callee, trips if "body=" in line else 1))
  callers: dict[str, list[tuple[str, int]]] = {}
  for comp, callees in calls.items():
    for callee, trips in callees:
      callers.setdefault(callee, []).append((comp, trips))
  mult: dict[str, int] = {}

  def multiplicity(comp: str) -> int:  # executions per step; the call graph is a DAG
    if comp not in mult:
      mult[comp] = 1 if comp == entry else 0  # provisional (no cycles in HLO)
      mult[comp] = (1 if comp == entry else 0) + sum(
          multiplicity(c) * t for c, t in callers.get(comp, []))
    return mult[comp]

  sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(bodies) + 1000))
  out = {k: {"ops": 0, "bytes": 0.0} for k in _COLLECTIVES}
  for comp, lines in bodies.items():
    for line in lines:
      m = re.search(r"=\s*(.+?)\s+(" + "|".join(_COLLECTIVES) + r")(?:-start)?\(", line)
      if not m:
        continue
      kind = m.group(2)
      out[kind]["ops"] += 1
      out[kind]["bytes"] += _shape_bytes(m.group(1)) * (multiplicity(comp) if entry else 1)
  return out


def _say(message: str) -> None:
  print(f"pod_memory: {message}", file=sys.stderr, flush=True)


def run(args) -> dict:
  """Lowers and compiles the configured train step; returns the measurements."""
  # XLA CPU's default scheduler orders for concurrency and ignores memory, so it undoes
  # rematerialisation (a 24-layer jax.checkpoint stack keeps every layer's activations); the
  # memory-minimising list scheduler models what TPU's memory-aware scheduler does.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + f" --xla_force_host_platform_device_count={args.devices}"
                             + " --xla_cpu_enable_concurrency_optimized_scheduler=false")
  import jax  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_platforms", "cpu")

  from hint_jax.models import hint  # pylint: disable=import-outside-toplevel
  from hint_jax.parallel import partitioner  # pylint: disable=import-outside-toplevel
  from hint_jax.run import gin_utils  # pylint: disable=import-outside-toplevel
  from hint_jax.training import loop  # pylint: disable=import-outside-toplevel
  if jax.device_count() != args.devices:
    raise SystemExit(f"pod_memory: got {jax.device_count()} devices, not {args.devices}; run "
                     "it in a fresh process (jax was initialised before XLA_FLAGS was set)")
  files = _gin_files(args)
  gin_utils.parse_gin(files, _bindings(args), str(gin_utils.DEFAULT_SEARCH_PATH))
  model_cfg, data_cfg, train_cfg = (_resolve(f"run_train.train.{k}")
                                    for k in ("model", "data", "trainer"))
  model = hint.HintModel(model_cfg)
  example = _example(data_cfg, args.concat, args.task_rows)
  start = time.perf_counter()
  _say(f"lowering {args.model} on {args.devices} devices ...")
  lowered = loop.lower_step(train_cfg, model, example)
  lower_s = time.perf_counter() - start
  _say(f"lowered in {lower_s:.0f} s; compiling (tens of minutes at XL/XXL on 2 cores) ...")
  constraints = partitioner.count_sharding_constraints(lowered.as_text())
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  gib = 2.0 ** 30
  peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
          + mem.temp_size_in_bytes)
  hlo = compiled.as_text()
  if args.hlo_out:
    with open(args.hlo_out, "w", encoding="utf-8") as f:
      f.write(hlo)
  comms = collective_bytes(hlo)
  return {
      "config": {"model": ("concat_" if args.concat else "hint_") + args.model,
                 "devices": args.devices, "model_parallel": args.model_parallel,
                 "rules": args.rules, "batch": args.batch, "microbatches": args.microbatches,
                 "remat": args.remat, "dtype": args.dtype, "gin_files": files,
                 "bindings": _bindings(args)},
      "per_device_gib": {"arguments": mem.argument_size_in_bytes / gib,
                         "outputs": mem.output_size_in_bytes / gib,
                         "aliased": mem.alias_size_in_bytes / gib,
                         "temp": mem.temp_size_in_bytes / gib, "peak": peak / gib},
      "collectives_gib_per_step": {k: round(v["bytes"] / gib, 3) for k, v in comms.items()},
      "collective_ops": {k: v["ops"] for k, v in comms.items()},
      "sharding_constraints": constraints,
      "lower_s": round(lower_s, 1), "compile_s": round(compile_s, 1),
      "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                 f"{os.cpu_count()} CPUs, jax {jax.__version__}",
      "date": time.strftime("%Y-%m-%d"),
  }


def main(argv=None) -> int:
  args = _parse(sys.argv[1:] if argv is None else argv)
  result = run(args)
  text = json.dumps(result, indent=2)
  print(text)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
