"""`make demo`: a tiny HINT against the concatenation baseline, pretrained, tuned and scored on CPU."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorBoard writers import TF; keep it quiet

# pylint: disable=g-import-not-at-top,wrong-import-position
import argparse
import dataclasses
import random
import shutil
import sys
import time
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from flax import traverse_util

from hint_jax.data import features as F
from hint_jax.data import pipeline, pretrain, sni_examples, synthetic
from hint_jax.data import vocab as vocab_lib
from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import baseline
from hint_jax.models import config as model_config
from hint_jax.peft import spec
from hint_jax.run.demo_eval import (  # noqa: F401  (the demo's API, used by tests and notebook)
  BUCKETS,
  TEMPLATES,
  as_concat,
  evaluate_all,
  flops_per_example,
  make_predictor,
  other_instructions,
  score,
)
from hint_jax.run.demo_report import (
  COLUMNS,
  FORMATS,
  HELDOUT,
  MODELS,
  markdown_table,
  table_rows,
  write_report,
)
from hint_jax.t5 import config as t5_config
from hint_jax.training import checkpoint, loop, optim
from hint_jax.training import config as train_config

# Token lengths (EOS included): synthetic examples fit in both formats (Def+2Pos: HINT
# instructions up to ~76 tokens, concat inputs up to ~96); SNI and pretraining text are cut (counted).
LENGTHS = {"hint": {F.INSTRUCTION: 80, F.INPUTS: 24, F.TARGETS: 12},
           "concat": {F.INSTRUCTION: 32, F.INPUTS: 96, F.TARGETS: 12}}



@dataclasses.dataclass(frozen=True)
class DemoConfig:
  """Model sizes and budgets of one demo run (see `PRESETS`).

  Attributes:
    d_model, num_heads, d_ff, num_layers: the T5 backbone (encoder and decoder depth);
      adapter_size, prefix_length: the modules HINT generates.
    batch_size, learning_rate: fine-tuning batch (both models) and the learning rate of both
      phases (AdamW, warmup + cosine decay); pretrain_batch_size: hyper-pretraining batch.
    pretrain_steps: hyper-pretraining steps of HINT on offline text; finetune_steps: fine-tuning
      steps of each model (the same budget for both).
    init_from_pretraining: what fine-tuning starts from (`INITS`): "hypernet" (default) gives
      HINT the hyper-pretrained hypernetwork (instruction pooling and generators) and both
      models the same fresh backbone; "all" gives HINT every hyper-pretrained weight and the
      baseline the hyper-pretrained backbone; "none" starts both from scratch.
    sni_fraction: share of fine-tuning examples drawn from SNI train tasks (rest: synthetic).
    pos_fraction: share of the synthetic training examples shown in Def+2Pos format (the
      instruction followed by two worked examples of the task, `synthetic` "Formats"); the rest
      are Def. Each model is trained once on both and evaluated in each format.
    group_size: fine-tuning batches are shuffled in runs of this many examples of one task
      sharing an instruction (both models; `pipeline.epoch_order`), so HINT's hypernetwork
      encodes about batch_size / group_size instructions per step instead of ~0.75 x batch_size:
      2.5x faster HINT steps at the same examples per step. 1: plain example shuffling.
    synthetic_per_task: training examples generated per seen synthetic task (fresh inputs
      beat repeated epochs on this suite; validation inputs never occur among them).
    pretrain_texts, pretrain_chunk: texts sampled from the offline corpus; tokens per chunk.
    eval_per_task: synthetic eval examples per task and split; sni_tasks, sni_per_task: SNI
      test tasks (evenly spaced) and instances of each. seed: data, sampling and model seed.
  """
  d_model: int = 64
  num_heads: int = 4
  d_ff: int = 128
  num_layers: int = 2
  adapter_size: int = 32
  prefix_length: int = 8
  batch_size: int = 128
  pretrain_batch_size: int = 32
  learning_rate: float = 2e-3
  pretrain_steps: int = 150
  finetune_steps: int = 1000
  init_from_pretraining: str = "hypernet"
  sni_fraction: float = 0.05
  pos_fraction: float = 0.5
  group_size: int = 4
  synthetic_per_task: int = 3000
  pretrain_texts: int = 3000
  pretrain_chunk: int = 40
  eval_per_task: int = 10
  sni_tasks: int = 10
  sni_per_task: int = 4
  seed: int = 0


# Which hyper-pretrained weights each model starts fine-tuning from (None: none, from scratch).
# At the demo's scale, 150 steps of text pretraining make the *backbone* a worse start for the
# synthetic suite (both models score lower from it), while the hypernetwork's pretrained head
# is a better one (README, "Results").
INITS = {"hypernet": {"hint": ("hypernet/.*",), "concat": None},
         "all": {"hint": (".*",), "concat": ("backbone/.*",)},
         "none": {"hint": None, "concat": None}}


PRESETS = {
    "demo": DemoConfig(),
    "tiny": DemoConfig(d_model=32, num_heads=2, d_ff=64, num_layers=1, adapter_size=8,
                       prefix_length=2, batch_size=16, pretrain_batch_size=16, pretrain_steps=4,
                       finetune_steps=12, synthetic_per_task=20,
                       pretrain_texts=200, eval_per_task=2, sni_tasks=3, sni_per_task=2),
}


def header(title: str, start: float) -> None:
  """Prints a phase header with the elapsed wall time."""
  print(f"\n=== {title}  [{time.perf_counter() - start:6.1f} s] ===", flush=True)


# ---- data ---------------------------------------------------------------------------------------

def tokenize(records: Sequence[Mapping[str, str]], vocab) -> tuple[dict, ...]:
  """Task examples as the batch pipeline holds them: int32 ids with EOS, plus the strings."""
  ids = {n: vocab.encode_batch([r[n] for r in records]) for n in (F.INSTRUCTION, F.INPUTS,
                                                                    F.TARGETS)}
  return tuple({**r, **{n: np.asarray([*ids[n][i], F.EOS_ID], np.int32) for n in ids}}
               for i, r in enumerate(records))


def pretrain_source(cfg: DemoConfig, vocab) -> pipeline.Source:
  """Hyper-pretraining chunks (instruction | inputs | targets) of sampled offline SNI/P3 text."""
  texts = list(pretrain.offline_corpus())
  texts = random.Random(cfg.seed).sample(texts, min(cfg.pretrain_texts, len(texts)))
  pcfg = pretrain.PretrainConfig(chunk_length=cfg.pretrain_chunk, seed=cfg.seed)
  examples = tuple({k: np.asarray(list(v) + [F.EOS_ID], np.int32) for k, v in r.items()}
                   for r in pretrain.records(texts, vocab.encode, "train", pcfg))
  return pipeline.Source("hyper_pretrain_text", ("offline_text",), (examples,), (len(examples),))


def finetune_sources(cfg: DemoConfig, vocab) -> dict[str, pipeline.Source]:
  """Synthetic train split, each example in Def or (a seeded `pos_fraction` of them) Def+2Pos
  format, + SNI train tasks (Def; none if `sni_fraction` is 0), for both models."""
  pick = np.random.default_rng(cfg.seed).random(
      len(synthetic.tasks_for_split("train")) * cfg.synthetic_per_task) < cfg.pos_fraction
  sni = list(sni_examples.records("train", sni_examples.SniConfig())) if cfg.sni_fraction else []
  parts = {}
  for model in MODELS:
    fmt = "hint" if model == "hint" else "concat"
    for name, num_pos in FORMATS.items():
      recs = synthetic.generate("train", cfg.seed, cfg.synthetic_per_task, num_pos=num_pos,
                                fmt=fmt)
      parts.setdefault(model, {})[f"synthetic_{name}_train"] = [
          r for r, p in zip(recs, pick) if p == bool(num_pos)]
    if sni:
      parts[model]["sni_def_train"] = sni if model == "hint" else as_concat(sni, "sni")
  syn_total = sum(len(v) for k, v in parts["hint"].items() if k.startswith("synthetic"))
  quota = {"sni_def_train": round(syn_total * cfg.sni_fraction / (1.0 - cfg.sni_fraction))}
  out = {}
  for model, named in parts.items():
    names = tuple(k for k, v in named.items() if v)
    out[model] = pipeline.Source(f"demo_{model}", names,
                                 tuple(tokenize(named[k], vocab) for k in names),
                                 tuple(quota.get(k, len(named[k])) for k in names))
  return out


# ---- models and training -----------------------------------------------------------------------

def model_configs(cfg: DemoConfig) -> dict[str, model_config.HintConfig]:
  """HINT (adapters + prefixes + fusion, shared instruction encoder) and its concat baseline."""
  t5 = t5_config.T5Config(
      vocab_size=vocab_lib.get_vocabulary().vocab_size, d_model=cfg.d_model,
      num_heads=cfg.num_heads, head_dim=cfg.d_model // cfg.num_heads, d_ff=cfg.d_ff,
      num_encoder_layers=cfg.num_layers, num_decoder_layers=cfg.num_layers)
  hint = model_config.HintConfig(
      t5=t5, peft=spec.PeftConfig(adapter_size=cfg.adapter_size, prefix_length=cfg.prefix_length),
      hypernet=hypernet_config.HypernetConfig(),
      max_instruction_length=LENGTHS["hint"][F.INSTRUCTION])
  return {"hint": hint, "concat": baseline.variant(hint, "concat")}


def train(cfg: DemoConfig, model_cfg: model_config.HintConfig, source: pipeline.Source,
          converter: str, steps: int, batch_size: int, model_dir: str,
          init_from: Mapping[str, np.ndarray] | None = None,
          init_patterns: tuple[str, ...] = (".*",), group_size: int = 1
          ) -> tuple[dict, float]:
  """Trains from scratch (or from `init_from`) in a fresh `model_dir`; batches in runs of
  `group_size` examples sharing an instruction (HINT's table sized for them, plus a quarter).

  Returns:
    (flat {path: numpy array} params, seconds spent).
  """
  model_dir = os.path.abspath(model_dir)  # orbax needs absolute paths
  shutil.rmtree(model_dir, ignore_errors=True)
  warmup = max(1, min(50, steps // 10))
  trainer = train_config.TrainConfig(
      model_dir=model_dir, train_steps=steps, seed=cfg.seed, log_every=max(1, steps // 4),
      optim=optim.OptimConfig(name="adamw", learning_rate=cfg.learning_rate, schedule="cosine",
                              warmup_steps=warmup, decay_steps=max(steps, warmup + 1),
                              end_lr_fraction=0.05),
      checkpoint=checkpoint.CheckpointConfig(period=0, keep=1, async_save=False),
      init_patterns=init_patterns, signature=repr(model_cfg))

  def data(start_step: int, shard) -> pipeline.TrainIterator:
    del shard  # one process
    rows = batch_size // group_size * 5 // 4 if group_size > 1 and converter == "hint" else None
    return pipeline.TrainIterator(source, LENGTHS[converter], batch_size, seed=cfg.seed,
                                  start_step=start_step, converter=converter,
                                  num_task_rows=rows, group_size=group_size)

  start = time.perf_counter()
  state = loop.train(trainer, baseline.build(model_cfg), data, pretrained=init_from)
  params = jax.tree.map(np.asarray, jax.device_get(state.params()))
  return traverse_util.flatten_dict(params, sep="/"), time.perf_counter() - start


# ---- evaluation ---------------------------------------------------------------------------------

def eval_records(cfg: DemoConfig, num_pos: int = 0,
                 fmt: str = "split") -> dict[str, list[dict]]:
  """Seen-task validation, both held-out splits (4x examples per held-out task) in `synthetic`
  format `fmt` with `num_pos` worked examples, and (Def only) the SNI test subset."""
  out = {s: list(synthetic.generate(s, cfg.seed, cfg.eval_per_task * (1 + 3 * (s == HELDOUT[1])),
                                    cfg.synthetic_per_task, num_pos=num_pos, fmt=fmt))
         for s in ("validation",) + HELDOUT}
  if num_pos:
    return out
  sni = list(sni_examples.records("test", sni_examples.SniConfig()))
  tasks = list(dict.fromkeys(r["task"] for r in sni))
  chosen = tasks[:: max(1, len(tasks) // cfg.sni_tasks)][:cfg.sni_tasks]
  by_task = {t: [r for r in sni if r["task"] == t][:cfg.sni_per_task] for t in chosen}
  return {**out, "sni_test": [r for t in chosen for r in by_task[t]]}


# ---- driver -------------------------------------------------------------------------------------

def all_eval_records(cfg: DemoConfig) -> dict[str, dict[str, dict[str, list[dict]]]]:
  """{model: {format: {split: records}}}: every format (`FORMATS`) as the model reads it."""
  return {model: {name: eval_records(cfg, k, "hint" if model == "hint" else "split")
                  for name, k in FORMATS.items()} for model in MODELS}


def run(cfg: DemoConfig, out_dir: str, preset: str = "custom") -> dict:
  """The whole demo; returns the results (also written under `out_dir`)."""
  start = time.perf_counter()
  os.makedirs(out_dir, exist_ok=True)
  vocab, cfgs, timings = vocab_lib.get_vocabulary(), model_configs(cfg), {}
  header("1/6 data: offline SNI/P3 text, synthetic suite, SNI train tasks", start)
  pre_source, sources = pretrain_source(cfg, vocab), finetune_sources(cfg, vocab)
  records = all_eval_records(cfg)
  timings["data"] = time.perf_counter() - start
  print(f"pretraining chunks: {pre_source.epoch_size}; fine-tuning examples per epoch: "
        f"{dict(zip(sources['hint'].task_names, sources['hint'].quotas))}", flush=True)
  header(f"2/6 hyper-pretraining HINT ({cfg.pretrain_steps} steps)", start)
  pre, timings["pretrain"] = train(cfg, cfgs["hint"], pre_source, "hint", cfg.pretrain_steps,
                                   cfg.pretrain_batch_size,
                                   os.path.join(out_dir, "models", "hint_pretrain"))
  flat = {}
  for i, model in enumerate(MODELS):
    patterns = INITS[cfg.init_from_pretraining][model]
    start_from = "scratch" if patterns is None else f"pretrained {', '.join(patterns)}"
    header(f"{3 + i}/6 fine-tuning {model} ({cfg.finetune_steps} steps, from {start_from})",
           start)
    flat[model], timings[model] = train(cfg, cfgs[model], sources[model], model,
                                        cfg.finetune_steps, cfg.batch_size,
                                        os.path.join(out_dir, "models", model),
                                        init_from=None if patterns is None else pre,
                                        init_patterns=patterns or (".*",),
                                        group_size=cfg.group_size)
  header("5/6 zero-shot evaluation (true vs another task's instruction)", start)
  t0 = time.perf_counter()
  results = {"preset": preset, "config": dataclasses.asdict(cfg),
             "models": evaluate_all(cfg.seed, cfgs, flat, records, vocab)}
  timings["evaluate"] = time.perf_counter() - t0
  header("6/6 report", start)
  timings["total"] = time.perf_counter() - start
  results["timings_s"] = timings
  path = write_report(results, out_dir)
  print(markdown_table(COLUMNS, table_rows(results)))
  print(f"\nreport: {path}\nplot:   {os.path.join(out_dir, 'score_vs_flops.png')}", flush=True)
  return results


def parse_args(argv: Sequence[str]) -> tuple[DemoConfig, str, str]:
  """(config, output folder, preset name) from the command line."""
  parser = argparse.ArgumentParser(prog="python -m hint_jax.run.demo", description=__doc__)
  parser.add_argument("--out", default="demo_out", help="output folder")
  parser.add_argument("--preset", default=os.environ.get("HINT_DEMO_PRESET", "demo"),
                      choices=sorted(PRESETS), help="sizes and budgets ($HINT_DEMO_PRESET)")
  for field in dataclasses.fields(DemoConfig):
    parser.add_argument(f"--{field.name}", type=type(getattr(PRESETS["demo"], field.name)),
                        help=f"override the preset's {field.name}")
  args = parser.parse_args(argv)
  if args.init_from_pretraining not in (None, *INITS):
    parser.error(f"--init_from_pretraining must be one of {', '.join(INITS)}")
  overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(DemoConfig)
               if getattr(args, f.name) is not None}
  return dataclasses.replace(PRESETS[args.preset], **overrides), args.out, args.preset


def main(argv: Sequence[str] | None = None) -> int:
  cfg, out_dir, preset = parse_args(sys.argv[1:] if argv is None else argv)
  run(cfg, out_dir, preset)
  return 0


if __name__ == "__main__":
  sys.exit(main())
