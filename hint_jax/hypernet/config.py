"""Frozen configuration of the hypernetwork (pooling attention and generator MLPs)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class HypernetConfig:
  """How the pooled instruction vectors are computed and turned into task parameters.

  Attributes:
    num_heads: heads of the pooling cross-attention; None = the backbone's `num_heads`.
    head_dim: per-head size of the pooling attention; None = the backbone's `head_dim`.
    pooling_dropout: dropout on the pooling attention weights. The original's pooling attention
      takes the backbone's dropout rate: 0.1 when fine-tuning (the default here), 0.0 in
      hyper-pretraining (`gin_configs/runs/pretrain.gin` sets it).
    generator_dropout: dropout on the hidden layer of every generator MLP. The original's
      generator MLPs keep their layer's default of 0.1 in every phase (it is never overridden);
      here it is a config value with that default.
    pooling_chunk: the hypernetwork pools and generates at most this many component queries at
      a time (whole layer slots, under `jax.checkpoint`), so its memory is that of one chunk
      ([T, heads, chunk, I] attention weights), not of all ~50k queries of an XL model. A pure
      memory/speed trade-off: results do not depend on it.
  """
  num_heads: int | None = None
  head_dim: int | None = None
  pooling_dropout: float = 0.1
  generator_dropout: float = 0.1
  pooling_chunk: int = 1024

  def __post_init__(self):
    for name in ("num_heads", "head_dim"):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError(f"HypernetConfig.{name} must be >= 1 or None, got {value}")
    if self.pooling_chunk < 1:
      raise ValueError(f"HypernetConfig.pooling_chunk must be >= 1, got {self.pooling_chunk}")
    for name in ("pooling_dropout", "generator_dropout"):
      value = getattr(self, name)
      if not 0.0 <= value < 1.0:
        raise ValueError(f"HypernetConfig.{name} must be in [0, 1), got {value}")
