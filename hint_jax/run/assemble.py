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
  """
  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  batch_size: int
  split: str = "train"
  seed: int = 0
  converter: str = "hint"
  num_task_rows: int | None = None
  cache_dir: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "task_feature_lengths", dict(self.task_feature_lengths))
    if self.batch_size < 1:
      raise ValueError(f"DataConfig.batch_size must be >= 1, got {self.batch_size}")


def build_model(cfg: model_config.HintConfig) -> hint.HintModel:
  return hint.HintModel(cfg)


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
        start_step=start_step, converter=cfg.converter, num_task_rows=cfg.num_task_rows)
  return data


def eval_set(cfg: DataConfig, shard: batches.InputShard | None = None) -> pipeline.EvalSet:
  """The evaluation set's batches for `shard` (`batches.input_shard(mesh)`; default: all)."""
  shard = shard or batches.InputShard()
  return pipeline.eval_set(cfg.mixture_or_task_name, cfg.split, cfg.task_feature_lengths,
                           cfg.batch_size, shard_id=shard.index, num_shards=shard.count, converter=cfg.converter,
                           num_task_rows=cfg.num_task_rows)


def checkpoints_dir(path: str) -> str:
  """A run's checkpoint directory from the run directory (`MODEL_DIR`, as the Predictor takes)
  or from its `checkpoints/` subdirectory itself."""
  sub = os.path.join(path, "checkpoints")
  return sub if os.path.isdir(sub) else path


def pretrained_params(hf_t5_dir: str | None, checkpoint_dir: str | None,
                      patterns: tuple[str, ...] = (".*",)) -> Mapping[str, Any] | None:
  """Flat {path: array} to initialise from: a Hugging Face T5 directory or another run (its
  run directory or its checkpoints directory); logs what is taken from where.

  Hugging Face weights are offered both as the backbone and as a separate instruction-encoder
  copy; `TrainConfig.init_patterns` (`patterns`, only for the log line) chooses which paths are
  taken.
  """
  if hf_t5_dir and checkpoint_dir:
    raise ValueError("give at most one of init_from_hf_t5 and init_from_checkpoint")
  if checkpoint_dir:
    directory = checkpoints_dir(checkpoint_dir)
    step = checkpoint.latest_step(directory)
    out = partial_restore.CheckpointParams(directory, step)  # read into shardings at init
    source = f"checkpoint {directory} step {step}"
  elif hf_t5_dir:
    from hint_jax import t5  # pylint: disable=import-outside-toplevel  # torch/safetensors readers
    _, params = t5.load_hf_t5(hf_t5_dir)
    flat = traverse_util.flatten_dict(params, sep="/")
    out: dict[str, np.ndarray] = {"backbone/" + k: v for k, v in flat.items()}
    out.update({INSTRUCTION_ENCODER_PREFIX + k: v for k, v in flat.items()})
    source = f"Hugging Face T5 {hf_t5_dir}"
  else:
    return None
  taken = sum(any(re.fullmatch(p, k) for p in patterns) for k in out)
  _LOG.info("init (fresh runs): parameters matching %s from %s (%d of its %d arrays match)",
            list(patterns), source, taken, len(out))
  return out
