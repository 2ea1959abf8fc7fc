"""Multi-head cross-attention pooling of an encoded instruction by learned component queries."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes

# Finite, so an all-padding row (unused slot of a padded task table) gives uniform weights
# instead of NaN.
_MASKED_LOGIT = -1e10


def _kernel(module: nn.Module, name: str, shape: tuple[int, ...], names: tuple[str, ...],
            in_axis, out_axis) -> jax.Array:
  init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=in_axis,
                                          out_axis=out_axis)
  return module.param(name, nn.with_logical_partitioning(init, names), shape, jnp.float32)


class AttentionPooling(nn.Module):
  """Queries shared by all tasks attend to each task's encoded instruction.

  No position bias, no residual connection and no normalisation (as published); logits are
  divided by sqrt(head_dim) and computed in float32; padding keys are masked.

  Attributes:
    num_heads: attention heads.
    head_dim: per-head size.
    dtype: compute dtype of the projections.
  """
  num_heads: int
  head_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, queries_QD: jax.Array, encoded_TID: jax.Array,
               mask_TI: jax.Array) -> jax.Array:
    """Pools the instruction once per query.

    Args:
      queries_QD: learned query vectors [Q, D] (the same for every task).
      encoded_TID: encoded instructions [T, I, D].
      mask_TI: key padding mask [T, I], True for real tokens.

    Returns:
      pooled_TQD [T, Q, D] in `dtype`.
    """
    d, h, k = encoded_TID.shape[-1], self.num_heads, self.head_dim
    proj = (axes.EMBED, axes.HEADS, axes.KV)
    w_q = _kernel(self, "query", (d, h, k), proj, 0, (1, 2))
    w_k = _kernel(self, "key", (d, h, k), proj, 0, (1, 2))
    w_v = _kernel(self, "value", (d, h, k), proj, 0, (1, 2))
    w_o = _kernel(self, "out", (h, k, d), (axes.HEADS, axes.KV, axes.EMBED), (0, 1), 2)
    cast = lambda x: jnp.asarray(x, self.dtype)
    q_QHK = jnp.einsum("qd,dhk->qhk", cast(queries_QD), cast(w_q))
    k_TIHK = jnp.einsum("tid,dhk->tihk", cast(encoded_TID), cast(w_k))
    v_TIHK = jnp.einsum("tid,dhk->tihk", cast(encoded_TID), cast(w_v))
    logits_THQI = jnp.einsum("qhk,tihk->thqi", q_QHK, k_TIHK,
                             preferred_element_type=jnp.float32) / jnp.sqrt(float(k))
    logits_THQI = jnp.where(mask_TI[:, None, None, :], logits_THQI, _MASKED_LOGIT)
    weights_THQI = jax.nn.softmax(logits_THQI, axis=-1).astype(self.dtype)
    pooled_TQHK = jnp.einsum("thqi,tihk->tqhk", weights_THQI, v_TIHK)
    return jnp.einsum("tqhk,hkd->tqd", pooled_TQHK, cast(w_o))
