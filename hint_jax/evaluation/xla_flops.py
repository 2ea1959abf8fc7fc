"""Per-example forward FLOPs of HINT and the concatenation baseline from XLA's cost analysis.

Both counts compile the real `HintModel` methods (`encode_task`, `cache_memory`, `apply`) at
batch 1 on abstract inputs, so they measure exactly the code that trains and serves.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from hint_jax.data import features
from hint_jax.evaluation import flops as flops_lib
from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config


def cost_flops(fn, *abstract_args) -> float:
  """FLOPs XLA reports for `jit(fn)` compiled on `abstract_args` (ShapeDtypeStructs); no run."""
  analysis = jax.jit(fn).lower(*abstract_args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis["flops"])


def _tokens(length: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1, length), jnp.int32)


def _model_and_params(config: model_config.HintConfig):
  model = hint.HintModel(config)
  batch = {features.ENCODER_INPUT_TOKENS: jnp.ones((1, 8), jnp.int32),
           features.DECODER_INPUT_TOKENS: jnp.ones((1, 4), jnp.int32)}
  return model, jax.eval_shape(lambda: hint.unbox(model.init(jax.random.key(0), batch)))


def concat_flops(cfg: t5_config.T5Config, lengths: flops_lib.Lengths) -> flops_lib.Breakdown:
  """Baseline: plain T5 over the concatenated input, batch 1."""
  model, params = _model_and_params(model_config.HintConfig(
      t5=cfg, peft=spec.PeftConfig(None, None, None), hypernet=None, fusion=False))
  empty = hint.TaskEncoding(None, None, None)
  fixed = cost_flops(lambda p, e, d: model.apply(p, empty, e, d), params,
                     _tokens(lengths.concat_inputs), _tokens(lengths.targets))
  return flops_lib.Breakdown(per_task=0, per_example_fixed=int(fixed))


def hint_flops(cfg: t5_config.T5Config, peft: spec.PeftConfig,
               hyper: hypernet_config.HypernetConfig, lengths: flops_lib.Lengths,
               fusion: bool = True, cache_memory: bool = True,
               bert=None) -> flops_lib.Breakdown:
  """HINT at batch 1: per task (instruction encoder, hypernetwork and, with `cache_memory`, the
  instruction's decoder cross-attention keys/values) and per example (`HintModel.apply`).
  `bert`: a `sentence_encoder.BertConfig` to encode instructions with instead of the backbone.

  `cache_memory` runs the decoder's cache initialisation, which also decodes one position: a
  few MFLOPs more than the analytic count, which has only the projections.
  """
  model, params = _model_and_params(model_config.HintConfig(
      t5=cfg, peft=peft, hypernet=hyper, fusion=fusion,
      instruction_encoder="shared" if bert is None else "bert", bert=bert,
      max_instruction_length=lengths.instruction if bert else max(1024, lengths.instruction)))

  def per_task(p, tokens_1I):
    encoding = model.encode_task(p, tokens_1I)
    return model.cache_memory(p, encoding) if cache_memory else encoding

  instruction = _tokens(lengths.instruction)
  task_flops = cost_flops(per_task, params, instruction)
  encoding = jax.eval_shape(per_task, params, instruction)
  example_flops = cost_flops(lambda p, e, x, d: model.apply(p, e, x, d), params, encoding,
                             _tokens(lengths.inputs), _tokens(lengths.targets))
  return flops_lib.Breakdown(per_task=int(task_flops), per_example_fixed=int(example_flops))
