"""Tiny HINT configs and batches shared by the model tests (odd sizes catch shape mix-ups)."""
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hint_jax.data import features
from hint_jax.models import config as config_lib
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config

T5 = t5_config.T5Config.preset("tiny", num_decoder_layers=3)
LORA = spec.LoraConfig(rank=3, alpha=6.0, projections=("query", "key", "value", "out"))
PEFT_ALL = spec.PeftConfig(adapter_size=7, prefix_length=2, lora=LORA)
PEFT_NONE = spec.PeftConfig(adapter_size=None, prefix_length=None, lora=None)
HINT = config_lib.HintConfig(t5=T5, peft=PEFT_ALL, max_instruction_length=9)
PLAIN = config_lib.HintConfig(t5=T5, peft=PEFT_NONE, hypernet=None, fusion=False)


def variant(**changes) -> config_lib.HintConfig:
  return dataclasses.replace(HINT, **changes)


def _tokens(rng: np.random.Generator, rows: int, length: int, vocab: int) -> np.ndarray:
  """Random ids >= 2, EOS after a random length, then padding."""
  tokens = rng.integers(2, vocab, size=(rows, length))
  lengths = rng.integers(1, length + 1, size=rows)
  cols = np.arange(length)[None]
  tokens = np.where(cols < lengths[:, None] - 1, tokens, 0)
  tokens[np.arange(rows), lengths - 1] = features.EOS_ID
  return tokens.astype(np.int32)


def batch(seed: int = 0, num_examples: int = 4, num_tasks: int | None = 2,
          instruction_length: int = 8, input_length: int = 6, target_length: int = 5) -> dict:
  """A batch with a de-duplicated task table (num_tasks rows) or one row per example (None)."""
  rng = np.random.default_rng(seed)
  targets = _tokens(rng, num_examples, target_length, T5.vocab_size)
  out = {
      features.ENCODER_INPUT_TOKENS: _tokens(rng, num_examples, input_length, T5.vocab_size),
      features.DECODER_TARGET_TOKENS: targets,
      features.DECODER_INPUT_TOKENS: np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      features.DECODER_LOSS_WEIGHTS: (targets > 0).astype(np.float32),
  }
  rows = num_examples if num_tasks is None else num_tasks
  out[features.HYPER_ENCODER_INPUT_TOKENS] = _tokens(rng, rows, instruction_length,
                                                     T5.vocab_size)
  if num_tasks is not None:
    out[features.TASK_INDEX] = (np.arange(num_examples) % num_tasks).astype(np.int32)[::-1].copy()
  return {k: jnp.asarray(v) for k, v in out.items()}


def per_example(b: dict) -> dict:
  """The same batch without de-duplication: the instruction table gathered per example."""
  b = dict(b)
  index = b.pop(features.TASK_INDEX)
  b[features.HYPER_ENCODER_INPUT_TOKENS] = b[features.HYPER_ENCODER_INPUT_TOKENS][index]
  return b


@functools.cache
def model(config: config_lib.HintConfig) -> hint.HintModel:
  """One model object per config, so its jitted methods compile once per test session."""
  return hint.HintModel(config)


@functools.cache
def jitted(config: config_lib.HintConfig, method: str):
  return jax.jit(getattr(model(config), method))


def _fill(abstract, seed: int):
  """Plain params for a boxed abstract tree: fan-in scaled normals, norm scales 1, std-1 tables.

  XLA-compiling the initialisers (threefry per parameter) costs tens of seconds on a loaded
  2-core CPU; every equivalence tested here holds for any weights. The real initialisers run in
  `tests/hypernet` (Hypernet module) and the T5 tests.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if len(leaf.shape) == 1:
      return jnp.ones(leaf.shape, leaf.dtype)
    fan_in = leaf.shape[0] * (leaf.shape[1] if name.endswith("['out']") else 1)
    std = 1.0 if "embed_" in name else 1.0 / np.sqrt(fan_in)
    return jnp.asarray(rng.normal(size=leaf.shape) * std, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, nn.unbox(abstract))


@functools.cache
def _backbone(seed: int) -> dict:
  return _fill(jax.eval_shape(model(PLAIN).init_backbone, jax.random.PRNGKey(seed), batch()),
               seed)


def model_and_params(config: config_lib.HintConfig, seed: int = 0):
  """(model, plain params): the same backbone for every config, a config-specific hypernet."""
  params = {"backbone": _backbone(seed)}
  abstract = jax.eval_shape(model(config).init_hypernet, jax.random.PRNGKey(seed), batch())
  if abstract:
    params["hypernet"] = _fill(abstract, seed + 1)
  return model(config), params


def forward(config: config_lib.HintConfig, params, b) -> jax.Array:
  return jitted(config, "forward")(params, b)
