"""Multi-head cross-attention pooling of an encoded instruction by learned component queries.

The module owns the weights; the computation is split so that the hypernetwork can pool its
~50k queries (at XL) chunk by chunk: `keys_values` projects H_I once, `pool` attends one chunk
of queries to it. `pool` is a pure function of arrays, so it can run under `jax.checkpoint`
inside `jax.lax.map` without flax lifting.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes
from hint_jax.layers import dropout

# Finite, so an all-padding row (unused slot of a padded task table) gives uniform weights
# instead of NaN.
_MASKED_LOGIT = -1e10
# Activation names of the pooling attention ([T, I, H, K] keys/values, [T, Q, D] outputs).
_ACT_TIHK = (axes.ACT_BATCH, axes.ACT_LENGTH, axes.ACT_HEADS, axes.ACT_KV)
_ACT_TQD = (axes.ACT_BATCH, axes.ACT_LENGTH, axes.ACT_EMBED)


class PoolingWeights(NamedTuple):
  """Projection kernels: query/key/value [D, H, K], out [H, K, D] (float32 params)."""
  query: jax.Array
  key: jax.Array
  value: jax.Array
  out: jax.Array


class KeysValues(NamedTuple):
  """H_I projected once per task: keys/values [T, I, H, K] (compute dtype), mask [T, I]."""
  key: jax.Array
  value: jax.Array
  mask: jax.Array


def _kernel(module: nn.Module, name: str, shape: tuple[int, ...], names: tuple[str, ...],
            in_axis, out_axis) -> jax.Array:
  init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=in_axis,
                                          out_axis=out_axis)
  return module.param(name, nn.with_logical_partitioning(init, names), shape, jnp.float32)


class AttentionPooling(nn.Module):
  """Queries shared by all tasks attend to each task's encoded instruction.

  No position bias, no residual connection and no normalisation (as published); logits are
  divided by sqrt(head_dim) and computed in float32; padding keys are masked. Dropout (rate
  `dropout_rate`) acts on the attention weights, as in the original's attention layer.

  Attributes:
    num_heads: attention heads.
    head_dim: per-head size.
    dtype: compute dtype of the projections.
    dropout_rate: dropout on the pooling attention weights.
  """
  num_heads: int
  head_dim: int
  dtype: Any = jnp.float32
  dropout_rate: float = 0.0

  @nn.compact
  def weights(self, d_model: int) -> PoolingWeights:
    """The (created on first use) projection kernels."""
    h, k = self.num_heads, self.head_dim
    proj = (axes.EMBED, axes.HEADS, axes.KV)
    return PoolingWeights(
        query=_kernel(self, "query", (d_model, h, k), proj, 0, (1, 2)),
        key=_kernel(self, "key", (d_model, h, k), proj, 0, (1, 2)),
        value=_kernel(self, "value", (d_model, h, k), proj, 0, (1, 2)),
        out=_kernel(self, "out", (h, k, d_model), (axes.HEADS, axes.KV, axes.EMBED), (0, 1), 2))

  def __call__(self, queries_QD: jax.Array, encoded_TID: jax.Array,
               mask_TI: jax.Array) -> jax.Array:
    """Pools the instruction once per query (all queries at once; no dropout).

    Args:
      queries_QD: learned query vectors [Q, D] (the same for every task).
      encoded_TID: encoded instructions [T, I, D].
      mask_TI: key padding mask [T, I], True for real tokens.

    Returns:
      pooled_TQD [T, Q, D] in `dtype`.
    """
    w = self.weights(encoded_TID.shape[-1])
    kv = keys_values(w, encoded_TID, mask_TI, self.dtype)
    return pool(w, queries_QD, kv, self.dtype)


def keys_values(w: PoolingWeights, encoded_TID: jax.Array, mask_TI: jax.Array,
                dtype: Any) -> KeysValues:
  """Projects the encoded instructions to pooling keys and values, once per task."""
  cast = lambda x: jnp.asarray(x, dtype)
  k_TIHK = jnp.einsum("tid,dhk->tihk", cast(encoded_TID), cast(w.key))
  v_TIHK = jnp.einsum("tid,dhk->tihk", cast(encoded_TID), cast(w.value))
  return KeysValues(nn.with_logical_constraint(k_TIHK, _ACT_TIHK),
                    nn.with_logical_constraint(v_TIHK, _ACT_TIHK), mask_TI)


def pool(w: PoolingWeights, queries_QD: jax.Array, kv: KeysValues, dtype: Any,
         dropout_rate: float = 0.0, rng: jax.Array | None = None) -> jax.Array:
  """pooled_TQD [T, Q, D] (`dtype`) of Q queries against every task's keys/values.

  Dropout on the attention weights iff `rng` is given (and `dropout_rate` > 0).
  """
  cast = lambda x: jnp.asarray(x, dtype)
  head_dim = w.query.shape[-1]
  q_QHK = jnp.einsum("qd,dhk->qhk", cast(queries_QD), cast(w.query))
  logits_THQI = jnp.einsum("qhk,tihk->thqi", q_QHK, kv.key,
                           preferred_element_type=jnp.float32) / jnp.sqrt(float(head_dim))
  logits_THQI = jnp.where(kv.mask[:, None, None, :], logits_THQI, _MASKED_LOGIT)
  weights_THQI = jax.nn.softmax(logits_THQI, axis=-1)
  if rng is not None and dropout_rate > 0:
    weights_THQI = dropout.apply(rng, weights_THQI, dropout_rate)
  pooled_TQHK = jnp.einsum("thqi,tihk->tqhk", weights_THQI.astype(dtype), kv.value)
  pooled_TQD = jnp.einsum("tqhk,hkd->tqd", pooled_TQHK, cast(w.out))
  return nn.with_logical_constraint(pooled_TQD, _ACT_TQD)
