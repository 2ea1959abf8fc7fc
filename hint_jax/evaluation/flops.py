"""Analytic per-example forward FLOPs of HINT and the concatenation baseline (matmuls, 2/MAC)."""
from __future__ import annotations

import dataclasses

from hint_jax.hypernet import components as components_lib
from hint_jax.hypernet import config as hypernet_config
from hint_jax.hypernet import sentence_encoder
from hint_jax.peft import kinds, spec
from hint_jax.t5 import config as t5_config

PRESETS = ("small", "base", "large", "xl", "xxl")


@dataclasses.dataclass(frozen=True)
class Lengths:
  """Token lengths of one example (means over a test set).

  Attributes:
    instruction: hypernetwork input I (HINT).
    inputs: encoder input L without the instruction (HINT).
    targets: decoder length T.
    concat_inputs: encoder input of the concatenation baseline (instruction + input + template).
  """
  instruction: int
  inputs: int
  targets: int
  concat_inputs: int


# Means over the 41 SNI test tasks in ../shared/data/sni (first 100 instances each) with the
# committed 8k vocabulary, 1024-token input cap (see benchmarks/efficiency.py, which re-measures).
SNI_LENGTHS = {
    "def": Lengths(instruction=75, inputs=74, targets=9, concat_inputs=163),
    "def2pos": Lengths(instruction=248, inputs=74, targets=9, concat_inputs=324),
}


def _dense(tokens: int, d_in: int, d_out: int) -> int:
  return 2 * tokens * d_in * d_out


def _kind_flops(site: spec.SiteParams | None, flops) -> int:
  """Sum over the site's generated kinds (leaves are shape tuples) of `flops(kind, leaf)`."""
  return 0 if site is None else sum(flops(kind, leaf) for kind, leaf in kinds.items(site))


def attention(cfg: t5_config.T5Config, q_len: int, kv_len: int,
              site: spec.SiteParams | None = None, cached_kv: int = 0) -> int:
  """One attention block: q/k/v/o projections, logits and weighted values, plus what each
  generated kind adds (`Kind.attention_flops`: LoRA, prefix positions, IA3 rescaling).

  `cached_kv` keys/values arrive already projected (a cached fused instruction): they cost
  attention logits and weighted values but no projection.
  """
  d, hk = cfg.d_model, cfg.num_heads * cfg.head_dim
  flops = 2 * _dense(q_len, d, hk) + 2 * _dense(kv_len, d, hk)
  flops += 2 * 2 * q_len * (kv_len + cached_kv) * hk
  return flops + _kind_flops(site, lambda k, leaf: k.attention_flops(leaf, q_len, kv_len))


def ffn(cfg: t5_config.T5Config, tokens: int, site: spec.SiteParams | None = None) -> int:
  """Feed-forward block plus what each generated kind adds (parallel adapter, IA3)."""
  n_in = 2 if cfg.feed_forward == "gated-gelu" else 1
  flops = (n_in + 1) * _dense(tokens, cfg.d_model, cfg.d_ff)
  return flops + _kind_flops(site, lambda k, leaf: k.ffn_flops(leaf, tokens))


def encoder(cfg: t5_config.T5Config, length: int, site: spec.SiteParams | None = None) -> int:
  per_layer = attention(cfg, length, length, site) + ffn(cfg, length, site)
  return cfg.num_encoder_layers * per_layer


def decoder(cfg: t5_config.T5Config, targets: int, memory: int,
            task_params: spec.TaskParams | None = None, cached_memory: int = 0) -> int:
  """Decoder stack (teacher forced over T positions) and output logits; `cached_memory` extra
  cross-attention positions come already projected."""
  self_site = task_params.decoder_self if task_params is not None else None
  cross_site = task_params.decoder_cross if task_params is not None else None
  per_layer = (attention(cfg, targets, targets, self_site)
               + attention(cfg, targets, memory, cross_site, cached_memory)
               + ffn(cfg, targets, self_site))
  return cfg.num_decoder_layers * per_layer + _dense(targets, cfg.d_model, cfg.vocab_size)


def bert_encoder(bert: sentence_encoder.BertConfig, d_model: int, length: int) -> int:
  """A pretrained BERT instruction encoder over `length` tokens and its projection to d_model
  (`sentence_encoder.InstructionEncoder`; biases, norms and softmax not counted)."""
  e = bert.hidden_size
  per_layer = 4 * _dense(length, e, e) + 2 * 2 * length * length * e
  per_layer += 2 * _dense(length, e, bert.intermediate_size)
  return bert.num_layers * per_layer + _dense(length, e, d_model)


def hypernet(cfg: t5_config.T5Config, peft: spec.PeftConfig,
             hyper: hypernet_config.HypernetConfig, instruction: int,
             bert: sentence_encoder.BertConfig | None = None) -> int:
  """Per-task cost: instruction encoding (the backbone's encoder, or `bert`), attention pooling
  and generator MLPs."""
  d = cfg.d_model
  hk = (hyper.num_heads or cfg.num_heads) * (hyper.head_dim or cfg.head_dim)
  comps = components_lib.components(peft, cfg.dims)
  queries = sum(c.num_queries for c in comps)
  pool = 2 * _dense(queries, d, hk) + 2 * _dense(instruction, d, hk)
  pool += 2 * 2 * queries * instruction * hk
  gen = sum(_dense(c.num_queries, d, d) + _dense(c.num_queries, d, c.out) for c in comps)
  encode = encoder(cfg, instruction) if bert is None else bert_encoder(bert, d, instruction)
  return encode + pool + gen


@dataclasses.dataclass(frozen=True)
class Breakdown:
  """Per-task and per-example forward FLOPs; `per_example(n)` amortises the task part."""
  per_task: int
  per_example_fixed: int

  def per_example(self, n: int) -> float:
    if n < 1:
      raise ValueError(f"examples per task must be >= 1, got {n}")
    return self.per_example_fixed + self.per_task / n


def memory_projection(cfg: t5_config.T5Config, peft: spec.PeftConfig, instruction: int) -> int:
  """Per-task cost of caching the fused instruction: every decoder layer's cross-attention
  key/value projections (and the generated kinds acting on them: LoRA, IA3) over I tokens
  (`HintModel.cache_memory`)."""
  cross = spec.task_param_shapes(peft, cfg.dims, 1).decoder_cross
  per_layer = 2 * _dense(instruction, cfg.d_model, cfg.num_heads * cfg.head_dim)
  per_layer += _kind_flops(cross, lambda k, leaf: k.kv_flops(leaf, instruction))
  return cfg.num_decoder_layers * per_layer


def hint_flops(cfg: t5_config.T5Config, peft: spec.PeftConfig,
               hyper: hypernet_config.HypernetConfig, lengths: Lengths,
               fusion: bool = True, cache_memory: bool = True,
               bert: sentence_encoder.BertConfig | None = None) -> Breakdown:
  """HINT: hypernet once per task; encoder over the input only; decoder memory I + L (fusion).
  `bert`: the pretrained instruction encoder replacing the backbone's (`HintConfig.bert`).

  With `cache_memory` (what the serving `Predictor` does) the instruction's cross-attention
  keys/values are projected once per task; without it, once per example (the training forward).
  """
  tp = spec.task_param_shapes(peft, cfg.dims, 1)
  per_task = hypernet(cfg, peft, hyper, lengths.instruction, bert)
  cached = lengths.instruction if fusion and cache_memory else 0
  memory = lengths.inputs + (lengths.instruction if fusion and not cache_memory else 0)
  fixed = (encoder(cfg, lengths.inputs, tp.encoder)
           + decoder(cfg, lengths.targets, memory, tp, cached))
  if cached:
    per_task += memory_projection(cfg, peft, lengths.instruction)
  return Breakdown(per_task=per_task, per_example_fixed=fixed)


def concat_flops(cfg: t5_config.T5Config, lengths: Lengths) -> Breakdown:
  """Concatenation baseline: the instruction is re-encoded with every example."""
  fixed = (encoder(cfg, lengths.concat_inputs)
           + decoder(cfg, lengths.targets, lengths.concat_inputs))
  return Breakdown(per_task=0, per_example_fixed=fixed)
