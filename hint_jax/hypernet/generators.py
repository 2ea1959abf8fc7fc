"""Generator MLPs: one 2-layer GELU network per component type, shared over layer slots."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes


class GeneratorMLP(nn.Module):
  """`gelu(x @ wi) @ wo / sqrt(D)`, no biases (D -> D -> out), as published.

  Attributes:
    out_features: output width per pooled vector.
    dropout_rate: dropout on the hidden layer (generator dropout, default 0.0).
    dtype: compute dtype; the result is returned in float32.
  """
  out_features: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, pooled_XD: jax.Array, enable_dropout: bool = False) -> jax.Array:
    """Maps pooled vectors [..., D] to generated rows [..., out_features] (float32)."""
    d = pooled_XD.shape[-1]
    init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    wi = self.param("wi", nn.with_logical_partitioning(init, (axes.EMBED, axes.MLP)),
                    (d, d), jnp.float32)
    # The hidden width equals D; it is named `embed` here so that `mlp` and `hyper_out`, both
    # mapped to the model axis, never meet in one kernel.
    wo = self.param("wo", nn.with_logical_partitioning(init, (axes.EMBED, axes.HYPER_OUT)),
                    (d, self.out_features), jnp.float32)
    hidden_XD = nn.gelu(jnp.asarray(pooled_XD, self.dtype) @ jnp.asarray(wi, self.dtype))
    hidden_XD = nn.Dropout(rate=self.dropout_rate)(hidden_XD, deterministic=not enable_dropout)
    out_XO = jnp.matmul(hidden_XD, jnp.asarray(wo, self.dtype),
                        preferred_element_type=jnp.float32)
    return out_XO / jnp.sqrt(jnp.float32(d))
