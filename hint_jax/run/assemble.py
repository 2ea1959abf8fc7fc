"""Builds the objects the entry points hand to the trainer: model, data sources, pretrained params."""
import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from hint_jax.data import pipeline, streaming
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.training import batches, checkpoint, partial_restore
from hint_jax.training import signature as signature_lib

INSTRUCTION_ENCODER_PREFIX = "hypernet/" + hint.INSTRUCTION_ENCODER + "/"
BERT_PREFIX = INSTRUCTION_ENCODER_PREFIX + "encoder/"  # the BERT inside `InstructionEncoder`
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where batches come from (T5X's MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, BATCH_SIZE).

  Attributes:
    mixture_or_task_name: registered SeqIO task or mixture.
    task_feature_lengths: max lengths of `instruction`, `inputs`, `targets`.
    batch_size: global batch size (all processes).
    split: split to read.
    seed: data seed (shuffling), independent of the model seed.
    converter: 'hint' (instruction table for the hypernetwork) or 'concat' (baseline).
    num_task_rows: rows of the per-batch instruction table (default: local batch size).
    cache_dir: training only: stream batches from this `hint-jax cache-tasks` directory
      (`data/streaming.py`: each process reads only its own rows, start-up and memory flat in
      the dataset size) instead of tokenizing every task into memory (`data/pipeline.py`).
      Same batch format; a different (equally deterministic) example order. Evaluation sets
      are always read in memory.
    instruction_vocab: a WordPiece vocabulary (`vocab.txt`, or the model folder holding it) to
      tokenise instructions with, from their text, instead of the task's vocabulary: what a
      model with a BERT instruction encoder (`HintConfig.bert`) reads. In-memory data only.
  """
  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  batch_size: int
  split: str = "train"
  seed: int = 0
  converter: str = "hint"
  num_task_rows: int | None = None
  cache_dir: str | None = None
  instruction_vocab: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "task_feature_lengths", dict(self.task_feature_lengths))
    if self.batch_size < 1:
      raise ValueError(f"DataConfig.batch_size must be >= 1, got {self.batch_size}")
    if self.cache_dir and self.instruction_vocab:
      raise ValueError("DataConfig: instruction_vocab re-tokenises instructions in memory; the "
                       "streaming cache (cache_dir) stores the task's own tokens: give one")


def instruction_vocab(cfg: DataConfig):
  """The `WordPieceVocabulary` of `cfg.instruction_vocab`, or None (the task's own tokens)."""
  if not cfg.instruction_vocab:
    return None
  from hint_jax.data import wordpiece  # pylint: disable=import-outside-toplevel
  return wordpiece.get_wordpiece_vocabulary(cfg.instruction_vocab)  # read once per process


def build_model(cfg: model_config.HintConfig) -> hint.HintModel:
  return hint.HintModel(cfg)


def load_source(cfg: DataConfig) -> pipeline.Source:
  """The data's task or mixture split in memory, instructions re-tokenised when
  `cfg.instruction_vocab` says so."""
  source = pipeline.load_source(cfg.mixture_or_task_name, cfg.split)
  vocab = instruction_vocab(cfg)
  return source if vocab is None else pipeline.with_instruction_vocab(source, vocab)


def check_instruction_vocab(model: model_config.HintConfig, data: DataConfig) -> None:
  """A BERT instruction encoder reads WordPiece ids, every other model the task's tokens.

  Raises:
    ValueError: the two disagree, or the WordPiece vocabulary is larger than the encoder's.
  """
  if model.bert is None:
    if data.instruction_vocab:
      raise ValueError(f"DataConfig.instruction_vocab={data.instruction_vocab!r} is only for a "
                       "model with instruction_encoder='bert'")
    return
  if not data.instruction_vocab:
    raise ValueError("the model encodes instructions with BERT: set DataConfig.instruction_vocab "
                     "to its WordPiece vocabulary (the folder with vocab.txt)")
  size = instruction_vocab(data).vocab_size
  if size > model.bert.vocab_size:
    raise ValueError(f"instruction vocabulary {data.instruction_vocab} has {size} tokens, the "
                     f"BERT encoder only {model.bert.vocab_size}")


def check_vocabulary(cfg: model_config.HintConfig, task_name: str) -> None:
  """Refuses a model whose vocabulary is smaller than the tokenizer of `task_name`'s data
  (out-of-range token ids would silently read garbage embeddings or give non-finite losses).

  Raises:
    ValueError: naming both sizes.
  """
  output = pipeline.registry().get_mixture_or_task(task_name).output_features
  size = max(f.vocabulary.vocab_size for f in output.values())
  if cfg.t5.vocab_size < size:
    raise ValueError(
        f"the model's vocabulary has {cfg.t5.vocab_size} tokens but {task_name!r} is tokenized "
        f"with {size}: use a model file whose T5Config.vocab_size is >= {size} (e.g. "
        f"runs/tiny_model.gin or models/hint_small.gin), not a unit-test preset")


def signature(cfg: model_config.HintConfig) -> str:
  """What a checkpoint must have been trained with: the config's semantic fields, compared on
  resume by `training.signature.compatible` (a newly added field at its default matches)."""
  return signature_lib.describe(cfg)


def train_source(cfg: DataConfig):
  """`data(start_step, shard)` yielding this process's input shard of each global batch."""
  def data(start_step: int, shard: batches.InputShard):
    if cfg.cache_dir:
      return streaming.train_iterator(
          cfg.cache_dir, cfg.mixture_or_task_name, cfg.split, cfg.task_feature_lengths,
          cfg.batch_size, seed=cfg.seed, shard_id=shard.index, num_shards=shard.count,
          start_step=start_step, converter=cfg.converter, num_task_rows=cfg.num_task_rows)
    return pipeline.train_iterator(
        cfg.mixture_or_task_name, cfg.split, cfg.task_feature_lengths, cfg.batch_size,
        seed=cfg.seed, shard_id=shard.index, num_shards=shard.count,
        start_step=start_step, converter=cfg.converter, num_task_rows=cfg.num_task_rows,
        instruction_vocab=instruction_vocab(cfg))
  return data


def eval_set(cfg: DataConfig, shard: batches.InputShard | None = None) -> pipeline.EvalSet:
  """The evaluation set's batches for `shard` (`batches.input_shard(mesh)`; default: all)."""
  shard = shard or batches.InputShard()
  return pipeline.eval_set(cfg.mixture_or_task_name, cfg.split, cfg.task_feature_lengths,
                           cfg.batch_size, shard_id=shard.index, num_shards=shard.count,
                           converter=cfg.converter, num_task_rows=cfg.num_task_rows,
                           instruction_vocab=instruction_vocab(cfg))


def checkpoints_dir(path: str) -> str:
  """A run's checkpoint directory from the run directory (`MODEL_DIR`, as the Predictor takes)
  or from its `checkpoints/` subdirectory itself."""
  sub = os.path.join(path, "checkpoints")
  return sub if os.path.isdir(sub) else path


def pretrained_params(hf_t5_dir: str | None, checkpoint_dir: str | None,
                      patterns: tuple[str, ...] = (".*",),
                      hf_bert_dir: str | None = None,
                      bert=None) -> Mapping[str, Any] | None:
  """Flat {path: array} to initialise from: a Hugging Face T5 directory or another run (its
  run directory or its checkpoints directory), and/or a Hugging Face BERT directory (the
  pretrained instruction encoder, e.g. all-MiniLM-L6-v2); logs what is taken from where.

  Hugging Face T5 weights are offered both as the backbone and as a separate instruction-encoder
  copy, BERT weights as `hypernet/instruction_encoder/encoder/...`; `TrainConfig.init_patterns`
  (`patterns`, only for the log line) chooses which paths are taken. `bert`: the model's
  `BertConfig`, which the directory's config.json must equal (compute dtype aside).
  """
  if checkpoint_dir and (hf_t5_dir or hf_bert_dir):
    raise ValueError("init_from_checkpoint takes every weight from that run: give neither "
                     "init_from_hf_t5 nor init_from_hf_bert with it")
  if checkpoint_dir:
    directory = checkpoints_dir(checkpoint_dir)
    step = checkpoint.latest_step(directory)
    out = partial_restore.CheckpointParams(directory, step)  # read into shardings at init
    source = f"checkpoint {directory} step {step}"
  elif hf_t5_dir or hf_bert_dir:
    out: dict[str, np.ndarray] = {}
    sources = []
    if hf_t5_dir:
      from hint_jax import t5  # pylint: disable=import-outside-toplevel  # torch/safetensors
      _, params = t5.load_hf_t5(hf_t5_dir)
      flat = traverse_util.flatten_dict(params, sep="/")
      out.update({"backbone/" + k: v for k, v in flat.items()})
      if not hf_bert_dir:  # the separate T5 copy (a BERT encoder takes that place otherwise)
        out.update({INSTRUCTION_ENCODER_PREFIX + k: v for k, v in flat.items()})
      sources.append(f"Hugging Face T5 {hf_t5_dir}")
    if hf_bert_dir:
      from hint_jax.hypernet import sentence_encoder  # pylint: disable=import-outside-toplevel
      found, params = sentence_encoder.load_hf_weights(hf_bert_dir)
      if bert is not None and dataclasses.replace(found, dtype=bert.dtype) != bert:
        raise ValueError(f"{hf_bert_dir}: its config.json describes {found}, but the model's "
                         f"HintConfig.bert is {bert}")
      out.update({BERT_PREFIX + k: v
                  for k, v in traverse_util.flatten_dict(params, sep="/").items()})
      sources.append(f"Hugging Face BERT {hf_bert_dir}")
    source = " and ".join(sources)
  else:
    return None
  taken = sum(any(re.fullmatch(p, k) for p in patterns) for k in out)
  _LOG.info("init (fresh runs): parameters matching %s from %s (%d of its %d arrays match)",
            list(patterns), source, taken, len(out))
  return out
