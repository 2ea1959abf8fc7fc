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
import jax.numpy as jnp
import numpy as np
import tqdm
from flax import traverse_util

from hint_jax.data import features as F
from hint_jax.data import pipeline, pretrain, sni_examples, sni_metrics, synthetic
from hint_jax.data import vocab as vocab_lib
from hint_jax.evaluation import flops as flops_lib
from hint_jax.evaluation import reliance
from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import baseline
from hint_jax.models import config as model_config
from hint_jax.peft import spec
from hint_jax.run.demo_report import (
  COLUMNS,
  HELDOUT,
  MODELS,
  markdown_table,
  table_rows,
  write_report,
)
from hint_jax.serving import predictor as predictor_lib
from hint_jax.t5 import config as t5_config
from hint_jax.training import checkpoint, loop, optim
from hint_jax.training import config as train_config

# Concatenation-baseline input text (as the registered `synthetic_concat` / `sni_*_concat` tasks).
TEMPLATES = {"synthetic": "{instruction} {input}", "sni": "{instruction}{input}"}
# Token lengths (EOS included): synthetic examples fit; SNI and pretraining text are cut (counted).
LENGTHS = {"hint": {F.INSTRUCTION: 32, F.INPUTS: 24, F.TARGETS: 12},
           "concat": {F.INSTRUCTION: 32, F.INPUTS: 56, F.TARGETS: 12}}
BUCKETS = {"hint": predictor_lib.Buckets((32,), (12, 24), (16, 32), max_decode_len=12),
           "concat": predictor_lib.Buckets((32,), (32, 56), (32,), max_decode_len=12)}


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


def as_concat(records: Sequence[Mapping[str, str]], kind: str) -> list[dict]:
  """Concatenation-baseline records: the instruction moves into the input text."""
  return [{**r, F.INSTRUCTION: "", F.INPUTS: TEMPLATES[kind].format(
      instruction=r[F.INSTRUCTION], input=r[F.INPUTS])} for r in records]


def pretrain_source(cfg: DemoConfig, vocab) -> pipeline.Source:
  """Hyper-pretraining chunks (instruction | inputs | targets) of sampled offline SNI/P3 text."""
  texts = list(pretrain.offline_corpus())
  texts = random.Random(cfg.seed).sample(texts, min(cfg.pretrain_texts, len(texts)))
  pcfg = pretrain.PretrainConfig(chunk_length=cfg.pretrain_chunk, seed=cfg.seed)
  examples = tuple({k: np.asarray(list(v) + [F.EOS_ID], np.int32) for k, v in r.items()}
                   for r in pretrain.records(texts, vocab.encode, "train", pcfg))
  return pipeline.Source("hyper_pretrain_text", ("offline_text",), (examples,), (len(examples),))


def finetune_sources(cfg: DemoConfig, vocab) -> dict[str, pipeline.Source]:
  """Synthetic train split + SNI train tasks (Def; none if `sni_fraction` is 0), both formats."""
  syn = list(synthetic.generate("train", cfg.seed, cfg.synthetic_per_task))
  sni = list(sni_examples.records("train", sni_examples.SniConfig())) if cfg.sni_fraction else []
  quotas = (len(syn), round(len(syn) * cfg.sni_fraction / (1.0 - cfg.sni_fraction)))
  names = ("synthetic_train", "sni_def_train")[:1 + bool(sni)]
  out = {}
  for model in MODELS:
    parts = [syn, sni] if model == "hint" else [as_concat(syn, "synthetic"), as_concat(sni, "sni")]
    examples = tuple(tokenize(p, vocab) for p in parts[:len(names)])
    out[model] = pipeline.Source(f"demo_{model}", names, examples, quotas[:len(names)])
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
          init_patterns: tuple[str, ...] = (".*",)) -> tuple[dict, float]:
  """Trains from scratch (or from `init_from`) in a fresh `model_dir`.

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
    return pipeline.TrainIterator(source, LENGTHS[converter], batch_size, seed=cfg.seed,
                                  start_step=start_step, converter=converter)

  start = time.perf_counter()
  state = loop.train(trainer, baseline.build(model_cfg), data, pretrained=init_from)
  params = jax.tree.map(np.asarray, jax.device_get(state.params()))
  return traverse_util.flatten_dict(params, sep="/"), time.perf_counter() - start


def make_predictor(model_cfg: model_config.HintConfig, flat_params: Mapping[str, np.ndarray],
                   kind: str = "synthetic") -> predictor_lib.Predictor:
  """A serving `Predictor` (fresh TaskParams cache) for the demo's lengths and template."""
  name = "hint" if model_cfg.uses_instruction else "concat"
  params = jax.tree.map(jnp.asarray, traverse_util.unflatten_dict(dict(flat_params), sep="/"))
  return predictor_lib.Predictor(baseline.build(model_cfg), params, vocab_lib.get_vocabulary(),
                                 buckets=BUCKETS[name], concat_template=TEMPLATES[kind])


# ---- evaluation ---------------------------------------------------------------------------------

def eval_records(cfg: DemoConfig) -> dict[str, list[dict]]:
  """Seen-task validation, both held-out splits (4x examples per held-out task), SNI test subset."""
  out = {s: list(synthetic.generate(s, cfg.seed, cfg.eval_per_task * (1 + 3 * (s == HELDOUT[1])),
                                    cfg.synthetic_per_task))
         for s in ("validation",) + HELDOUT}
  sni = list(sni_examples.records("test", sni_examples.SniConfig()))
  tasks = list(dict.fromkeys(r["task"] for r in sni))
  chosen = tasks[:: max(1, len(tasks) // cfg.sni_tasks)][:cfg.sni_tasks]
  by_task = {t: [r for r in sni if r["task"] == t][:cfg.sni_per_task] for t in chosen}
  return {**out, "sni_test": [r for t in chosen for r in by_task[t]]}


def other_instructions(records: Sequence[Mapping[str, str]], seed: int) -> list[str]:
  """Each record's instruction replaced by another task's (a seeded derangement of tasks)."""
  first = {}
  for r in records:
    first.setdefault(r["task"], r[F.INSTRUCTION])
  other = reliance.other_task_instructions(first, seed)
  return [other[r["task"]] for r in records]


def score(split: str, records: Sequence[Mapping], predictions: Sequence[str]) -> float:
  """Exact match x100 (synthetic) or the official SNI ROUGE-L x100 (SNI)."""
  if split == "sni_test":
    return sni_metrics.compute_metrics(predictions, [r["references"] for r in records])["rougeL"]
  return synthetic.exact_match([r[F.TARGETS] for r in records], predictions)["exact_match"]


def evaluate(cfg: DemoConfig, model_cfg: model_config.HintConfig, flat: Mapping[str, np.ndarray],
             records: Mapping[str, list[dict]], bar: tqdm.tqdm) -> dict:
  """Scores with the true and another task's instruction on every eval split, plus throughput."""
  out: dict = {"true": {}, "other": {}, "samples": {}}
  for split, recs in records.items():
    pred = make_predictor(model_cfg, flat, "sni" if split == "sni_test" else "synthetic")
    inputs = [r[F.INPUTS] for r in recs]
    texts = {"true": [r[F.INSTRUCTION] for r in recs], "other": other_instructions(recs, cfg.seed)}
    for cond in ("true", "other"):
      predictions = pred.generate(texts[cond], inputs)
      out[cond][split] = score(split, recs, predictions)
      picks = range(0, len(recs), max(1, len(recs) // 3))
      out["samples"].setdefault(split, {})[cond] = [
          (texts[cond][i], inputs[i], recs[i][F.TARGETS], predictions[i]) for i in picks][:3]
      bar.update(1)
  out["examples_per_s"] = throughput(model_cfg, flat, records["heldout_task"])
  bar.update(1)
  return out


def throughput(model_cfg, flat, records: Sequence[Mapping]) -> float:
  """Examples/s of greedy decoding, from a cold TaskParams cache (hypernet cost included)."""
  pred = make_predictor(model_cfg, flat)
  texts, inputs = [r[F.INSTRUCTION] for r in records], [r[F.INPUTS] for r in records]
  pred.generate(texts[:1], inputs[:1])  # compile (the compiled step is shared per config)
  pred = make_predictor(model_cfg, flat)
  start = time.perf_counter()
  pred.generate(texts, inputs)
  return len(records) / (time.perf_counter() - start)


def flops_per_example(cfgs: Mapping[str, model_config.HintConfig],
                      records: Sequence[Mapping[str, str]], vocab, kind: str = "synthetic"
                      ) -> dict[str, float]:
  """Analytic forward FLOPs per example on `records`; HINT's hypernetwork is amortised over the
  examples sharing an instruction, the baseline re-reads the instruction with every example."""
  def mean_len(texts):
    return max(1, round(float(np.mean([len(t) + 1 for t in vocab.encode_batch(list(texts))]))))
  concat = as_concat(records, kind)
  lengths = flops_lib.Lengths(instruction=mean_len(r[F.INSTRUCTION] for r in records),
                              inputs=mean_len(r[F.INPUTS] for r in records),
                              targets=mean_len(r[F.TARGETS] for r in records),
                              concat_inputs=mean_len(r[F.INPUTS] for r in concat))
  per_instruction = len(records) / len({r[F.INSTRUCTION] for r in records})
  hint = cfgs["hint"]
  return {"hint": flops_lib.hint_flops(hint.t5, hint.peft, hint.hypernet, lengths,
                                       hint.fusion).per_example(per_instruction),
          "concat": flops_lib.concat_flops(cfgs["concat"].t5, lengths).per_example(1)}


# ---- driver -------------------------------------------------------------------------------------

def evaluate_all(cfg: DemoConfig, cfgs, flat, records, vocab) -> dict:
  """Both models on every eval split, with FLOPs and the instruction gain."""
  flops = {k: flops_per_example(cfgs, records[split], vocab, k)
           for k, split in (("synthetic", "heldout_task"), ("sni", "sni_test"))}
  out = {}
  with tqdm.tqdm(total=len(MODELS) * (2 * len(records) + 1), desc="eval",
                 dynamic_ncols=True) as bar:
    for model in MODELS:
      r = evaluate(cfg, cfgs[model], flat[model], records, bar)
      gains = [r["true"][s] - r["other"][s] for s in HELDOUT]
      out[model] = {**r, "flops": {k: v[model] for k, v in flops.items()},
                    "heldout_em": float(np.mean([r["true"][s] for s in HELDOUT])),
                    "instruction_gain": float(np.mean(gains))}
  return out


def run(cfg: DemoConfig, out_dir: str, preset: str = "custom") -> dict:
  """The whole demo; returns the results (also written under `out_dir`)."""
  start = time.perf_counter()
  os.makedirs(out_dir, exist_ok=True)
  vocab, cfgs, timings = vocab_lib.get_vocabulary(), model_configs(cfg), {}
  header("1/6 data: offline SNI/P3 text, synthetic suite, SNI train tasks", start)
  pre_source, sources = pretrain_source(cfg, vocab), finetune_sources(cfg, vocab)
  records = eval_records(cfg)
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
                                        init_patterns=patterns or (".*",))
  header("5/6 zero-shot evaluation (true vs another task's instruction)", start)
  t0 = time.perf_counter()
  results = {"preset": preset, "config": dataclasses.asdict(cfg),
             "models": evaluate_all(cfg, cfgs, flat, records, vocab)}
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
