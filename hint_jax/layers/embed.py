"""Token embedding (shared by encoder, decoder and hyper-encoder) and T5 relative position bias."""
import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from hint_jax import axes, types


class Embed(nn.Module):
  """Token embedding table `embedding` [V, D]; `attend` gives tied logits."""
  num_embeddings: int
  features: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.embedding = self.param(
        "embedding", nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                                  (axes.VOCAB, axes.EMBED)),
        (self.num_embeddings, self.features), jnp.float32)

  def __call__(self, ids_BL: types.Array) -> types.Array:
    return jnp.take(jnp.asarray(self.embedding, self.dtype), ids_BL, axis=0)

  def attend(self, x_BTD: types.Array) -> types.Array:
    """Float32 logits [B, T, V] against the embedding table."""
    return jnp.einsum("btd,vd->btv", x_BTD.astype(self.dtype),
                      jnp.asarray(self.embedding, self.dtype),
                      preferred_element_type=jnp.float32)


def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool,
                             num_buckets: int, max_distance: int) -> np.ndarray:
  """T5 buckets of `key_pos - query_pos`, float32 arithmetic exactly as Hugging Face's."""
  rel = np.asarray(relative_position, np.int64)
  buckets = np.zeros_like(rel)
  if bidirectional:
    num_buckets //= 2
    buckets += (rel > 0).astype(np.int64) * num_buckets
    rel = np.abs(rel)
  else:
    rel = -np.minimum(rel, 0)
  max_exact = num_buckets // 2
  with np.errstate(divide="ignore"):
    log_ratio = np.log(rel.astype(np.float32) / np.float32(max_exact))
  large = (log_ratio / np.float32(math.log(max_distance / max_exact))
           * np.float32(num_buckets - max_exact))
  large = max_exact + np.where(np.isfinite(large), large, 0).astype(np.int64)
  large = np.minimum(large, num_buckets - 1)
  return buckets + np.where(rel < max_exact, rel, large)


class RelativePositionBias(nn.Module):
  """One learned scalar per (head, bucket): `rel_embedding` [H, buckets]."""
  num_buckets: int
  max_distance: int
  num_heads: int
  bidirectional: bool

  @nn.compact
  def __call__(self, query_pos_Q: types.Array, num_keys: int) -> types.Array:
    """Bias [1, H, Q, num_keys] (float32) for query positions `query_pos_Q` (may be traced)."""
    table_HN = self.param(
        "rel_embedding", nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                                      (axes.HEADS, axes.RELPOS)),
        (self.num_heads, self.num_buckets), jnp.float32)
    span = max(num_keys, query_pos_Q.shape[0])
    # Buckets of every relative position in [-span, span], looked up by (key - query + span).
    lookup = relative_position_bucket(np.arange(-span, span + 1), self.bidirectional,
                                      self.num_buckets, self.max_distance)
    rel_QK = jnp.arange(num_keys)[None, :] - query_pos_Q[:, None] + span
    bucket_QK = jnp.asarray(lookup, jnp.int32)[rel_QK]
    return jnp.asarray(table_HN)[:, bucket_QK][None]
