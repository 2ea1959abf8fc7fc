"""Per-example forward FLOPs of HINT and the concatenation baseline from XLA's cost analysis."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax.evaluation import flops as flops_lib
from hint_jax.hypernet import config as hypernet_config
from hint_jax.hypernet import model as hypernet_model
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config
from hint_jax.t5 import model as t5_model


def cost_flops(fn, *abstract_args) -> float:
  """FLOPs XLA reports for `jit(fn)` compiled on `abstract_args` (ShapeDtypeStructs); no run."""
  analysis = jax.jit(fn).lower(*abstract_args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis["flops"])


def _tokens(length: int) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1, length), jnp.int32)


def _abstract_params(module: nn.Module, *args, method=None):
  init = lambda: nn.unbox(module.init(jax.random.key(0), *args, method=method))
  return jax.eval_shape(init)


def concat_flops(cfg: t5_config.T5Config, lengths: flops_lib.Lengths) -> flops_lib.Breakdown:
  """Baseline: plain T5 over the concatenated input, batch 1."""
  model = t5_model.T5(cfg)
  enc, dec = _tokens(lengths.concat_inputs), _tokens(lengths.targets)
  params = _abstract_params(model, jnp.ones(enc.shape, jnp.int32), jnp.ones(dec.shape, jnp.int32))
  fixed = cost_flops(lambda p, e, d: model.apply(p, e, d), params, enc, dec)
  return flops_lib.Breakdown(per_task=0, per_example_fixed=int(fixed))


def _hint_example_fn(model: t5_model.T5, fusion: bool):
  def forward(params, task_params, hidden_1ID, mask_1I, enc_1L, dec_1T):
    encoded_1LD = model.apply(params, enc_1L, task_params, method=model.encode)
    mask_1L = (enc_1L > 0).astype(jnp.int32)
    if fusion:
      encoded_1LD = jnp.concatenate([hidden_1ID.astype(encoded_1LD.dtype), encoded_1LD], axis=1)
      mask_1L = jnp.concatenate([mask_1I, mask_1L], axis=1)
    return model.apply(params, encoded_1LD, mask_1L, dec_1T, task_params, method=model.decode)
  return forward


def hint_flops(cfg: t5_config.T5Config, peft: spec.PeftConfig,
               hyper: hypernet_config.HypernetConfig, lengths: flops_lib.Lengths,
               fusion: bool = True) -> flops_lib.Breakdown:
  """HINT at batch 1: per task (T5 encoder over I, then the hypernetwork) and per example
  (adapted encoder over L, decoder over the fused memory I + L)."""
  model = t5_model.T5(cfg)
  hnet = hypernet_model.Hypernet(hyper, peft, cfg.dims, dtype=cfg.compute_dtype)
  instr, enc, dec = (_tokens(lengths.instruction), _tokens(lengths.inputs),
                     _tokens(lengths.targets))
  params = _abstract_params(model, jnp.ones(enc.shape, jnp.int32), jnp.ones(dec.shape, jnp.int32))
  hidden = jax.ShapeDtypeStruct((1, lengths.instruction, cfg.d_model), cfg.compute_dtype)
  mask = jax.ShapeDtypeStruct((1, lengths.instruction), jnp.int32)
  hparams = jax.eval_shape(lambda: nn.unbox(hnet.init(
      jax.random.key(0), jnp.zeros(hidden.shape, hidden.dtype), jnp.ones(mask.shape, bool))))

  def per_task(p, hp, tokens_1I):
    hidden_1ID = model.apply(p, tokens_1I, method=model.encode)
    return hnet.apply(hp, hidden_1ID, tokens_1I > 0)

  task_flops = cost_flops(per_task, params, hparams, instr)
  task_params = spec.task_param_structs(peft, cfg.dims, 1)
  example_flops = cost_flops(_hint_example_fn(model, fusion), params, task_params, hidden, mask,
                             enc, dec)
  return flops_lib.Breakdown(per_task=int(task_flops), per_example_fixed=int(example_flops))
