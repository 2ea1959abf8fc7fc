"""Generator MLPs: one 2-layer GELU network per component type, shared over layer slots.

As with pooling, the module owns the weights and `generate` is a pure function, so the
hypernetwork can run it chunk by chunk under `jax.checkpoint`.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes
from hint_jax.layers import dropout


class GeneratorWeights(NamedTuple):
  """wi [D, D] and wo [D, out] (float32 params)."""
  wi: jax.Array
  wo: jax.Array


class GeneratorMLP(nn.Module):
  """`gelu(x @ wi) @ wo / sqrt(D)`, no biases (D -> D -> out), as published.

  Both kernels start fan-in scaled (truncated normal), as the original's, except `wo` of a
  `zero_init` generator (IA3's, `peft.kinds.Ia3`), which starts at zero: it then generates
  exactly zeros until trained (its own gradient is `hidden^T @ d out`, not zero).

  Attributes:
    out_features: output width per pooled vector.
    dropout_rate: dropout on the hidden layer (generator dropout).
    dtype: compute dtype; the result is returned in float32.
    zero_init: `wo` starts at zero.
  """
  out_features: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  zero_init: bool = False

  @nn.compact
  def weights(self, d_model: int) -> GeneratorWeights:
    """The (created on first use) kernels."""
    init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    wi = self.param("wi", nn.with_logical_partitioning(init, (axes.EMBED, axes.MLP)),
                    (d_model, d_model), jnp.float32)
    # The hidden width equals D; it is named `embed` here so that `mlp` and `hyper_out`, both
    # mapped to the model axis, never meet in one kernel.
    init_wo = nn.initializers.zeros if self.zero_init else init
    wo = self.param("wo", nn.with_logical_partitioning(init_wo, (axes.EMBED, axes.HYPER_OUT)),
                    (d_model, self.out_features), jnp.float32)
    return GeneratorWeights(wi, wo)

  def __call__(self, pooled_XD: jax.Array, enable_dropout: bool = False) -> jax.Array:
    """Maps pooled vectors [..., D] to generated rows [..., out_features] (float32)."""
    w = self.weights(pooled_XD.shape[-1])
    rng = self.make_rng("dropout") if enable_dropout and self.dropout_rate > 0 else None
    return generate(w, pooled_XD, self.dtype, self.dropout_rate, rng)


def generate(w: GeneratorWeights, pooled_XD: jax.Array, dtype: Any, dropout_rate: float = 0.0,
             rng: jax.Array | None = None) -> jax.Array:
  """Generated rows [..., out] (float32) from pooled vectors [..., D]; hidden dropout iff `rng`."""
  d = pooled_XD.shape[-1]
  hidden_XD = nn.gelu(jnp.asarray(pooled_XD, dtype) @ jnp.asarray(w.wi, dtype))
  if rng is not None and dropout_rate > 0:
    hidden_XD = dropout.apply(rng, hidden_XD, dropout_rate)
  out_XO = jnp.matmul(hidden_XD, jnp.asarray(w.wo, dtype), preferred_element_type=jnp.float32)
  return out_XO / jnp.sqrt(jnp.float32(d))
