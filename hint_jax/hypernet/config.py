"""Frozen configuration of the hypernetwork (pooling attention and generator MLPs)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class HypernetConfig:
  """How the pooled instruction vectors are computed and turned into task parameters.

  Attributes:
    num_heads: heads of the pooling cross-attention; None = the backbone's `num_heads`.
    head_dim: per-head size of the pooling attention; None = the backbone's `head_dim`.
    generator_dropout: dropout rate between the two layers of every generator MLP (the original
      code hard-coded 0.0 here; it is a config value now, default unchanged).
    pooling_chunk: the hypernetwork pools and generates at most this many component queries at
      a time (whole layer slots, under `jax.checkpoint`), so its memory is that of one chunk
      ([T, heads, chunk, I] attention weights), not of all ~50k queries of an XL model. A pure
      memory/speed trade-off: results do not depend on it.
  """
  num_heads: int | None = None
  head_dim: int | None = None
  generator_dropout: float = 0.0
  pooling_chunk: int = 4096

  def __post_init__(self):
    for name in ("num_heads", "head_dim"):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError(f"HypernetConfig.{name} must be >= 1 or None, got {value}")
    if self.pooling_chunk < 1:
      raise ValueError(f"HypernetConfig.pooling_chunk must be >= 1, got {self.pooling_chunk}")
    if not 0.0 <= self.generator_dropout < 1.0:
      raise ValueError(f"HypernetConfig.generator_dropout must be in [0, 1), "
                       f"got {self.generator_dropout}")
