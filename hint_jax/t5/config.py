"""Frozen `T5Config`: backbone sizes, variant, dtype and dropout, with T5.1.1 size presets."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from hint_jax.peft import spec

FEED_FORWARDS = ("gated-gelu", "relu")
REMAT_POLICIES = ("none", "minimal", "full")

# T5.1.1 dimensions (google/t5-v1_1-*). `tiny` uses odd sizes so shape mix-ups fail loudly.
_PRESETS = {
    "tiny": {"vocab_size": 97, "d_model": 12, "num_heads": 3, "head_dim": 5, "d_ff": 14,
                 "num_encoder_layers": 2, "num_decoder_layers": 2, "relative_attention_num_buckets": 8,
                 "relative_attention_max_distance": 20},
    "small": {"vocab_size": 32128, "d_model": 512, "num_heads": 6, "head_dim": 64, "d_ff": 1024,
                  "num_encoder_layers": 8, "num_decoder_layers": 8},
    "base": {"vocab_size": 32128, "d_model": 768, "num_heads": 12, "head_dim": 64, "d_ff": 2048,
                 "num_encoder_layers": 12, "num_decoder_layers": 12},
    "large": {"vocab_size": 32128, "d_model": 1024, "num_heads": 16, "head_dim": 64, "d_ff": 2816,
                  "num_encoder_layers": 24, "num_decoder_layers": 24},
    "xl": {"vocab_size": 32128, "d_model": 2048, "num_heads": 32, "head_dim": 64, "d_ff": 5120,
               "num_encoder_layers": 24, "num_decoder_layers": 24},
    "xxl": {"vocab_size": 32128, "d_model": 4096, "num_heads": 64, "head_dim": 64, "d_ff": 10240,
                "num_encoder_layers": 24, "num_decoder_layers": 24},
}


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Sizes and variant of a T5 encoder-decoder.

  Attributes:
    vocab_size: number of token ids (pad 0, EOS 1).
    d_model: hidden size D.
    num_heads: attention heads H.
    head_dim: per-head size K (H * K need not equal D).
    d_ff: feed-forward size F.
    num_encoder_layers: encoder depth.
    num_decoder_layers: decoder depth.
    relative_attention_num_buckets: relative position buckets (one table per stack).
    relative_attention_max_distance: distance beyond which buckets saturate.
    dropout_rate: dropout probability (applied only with `enable_dropout=True`). The library
      default is 0.0; the run files set the original HINT's values (0.1 for fine-tuning in
      `runs/finetune_*.gin`, 0.0 for hyper-pretraining in `runs/pretrain.gin`).
    feed_forward: "gated-gelu" (T5.1.1) or "relu" (original T5).
    tie_word_embeddings: True = original T5 logits (token embedding, output scaled by
      d_model**-0.5); False = separate `logits_dense` kernel, no scaling (T5.1.1).
    dtype: compute dtype name; parameters always stay float32.
    layer_norm_epsilon: RMSNorm epsilon.
    remat_policy: rematerialisation of every encoder/decoder layer in training (as T5X):
      "none" keeps all activations for the backward pass; "minimal" keeps only the outputs of
      the weight matmuls (projections, FFN) and recomputes the rest (attention, norms, GELU);
      "full" keeps only each layer's input. Memory only: results are unchanged.
    scan_layers: run each stack's layers as one `nn.scan` (as T5X's `scan_layers`) instead of a
      Python loop: params are stored stacked, `encoder/layers/...` [N, ...] instead of
      `encoder/layers_i/...` (`t5.model.scanned` / `unscanned` convert), compile time no longer
      grows with depth, and with remat the backward pass rematerialises one layer at a time.
      Results are unchanged. Step decoding converts to the unrolled layout (`t5.decoding`).
  """
  vocab_size: int
  d_model: int
  num_heads: int
  head_dim: int
  d_ff: int
  num_encoder_layers: int
  num_decoder_layers: int
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.0
  feed_forward: str = "gated-gelu"
  tie_word_embeddings: bool = False
  dtype: str = "float32"
  layer_norm_epsilon: float = 1e-6
  remat_policy: str = "none"
  scan_layers: bool = False

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "num_heads", "head_dim", "d_ff",
                 "num_encoder_layers", "num_decoder_layers", "relative_attention_num_buckets",
                 "relative_attention_max_distance"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"T5Config.{name} must be a positive int, got {value!r}")
    if self.relative_attention_num_buckets < 4:
      raise ValueError("T5Config.relative_attention_num_buckets must be >= 4, got "
                       f"{self.relative_attention_num_buckets}")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"T5Config.dropout_rate must be in [0, 1), got {self.dropout_rate}")
    if self.feed_forward not in FEED_FORWARDS:
      raise ValueError(f"T5Config.feed_forward must be one of {FEED_FORWARDS}, "
                       f"got {self.feed_forward!r}")
    if self.dtype not in ("float32", "bfloat16", "float16"):
      raise ValueError(f"T5Config.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"T5Config.remat_policy must be one of {REMAT_POLICIES}, "
                       f"got {self.remat_policy!r}")
    if self.layer_norm_epsilon <= 0:
      raise ValueError(f"T5Config.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon}")

  @classmethod
  def preset(cls, name: str, **overrides) -> T5Config:
    """A named size (tiny, small, base, large, xl, xxl) with optional field overrides."""
    if name not in _PRESETS:
      raise ValueError(f"unknown T5 preset {name!r}; choose from {sorted(_PRESETS)}")
    return cls(**{**_PRESETS[name], **overrides})

  @property
  def compute_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  @property
  def dims(self) -> spec.BackboneDims:
    """The sizes generated task parameters depend on."""
    return spec.BackboneDims(d_model=self.d_model, num_heads=self.num_heads,
                             head_dim=self.head_dim, num_encoder_layers=self.num_encoder_layers,
                             num_decoder_layers=self.num_decoder_layers, d_ff=self.d_ff)
