"""T5 multi-head attention with optional per-example LoRA and prefix hooks and a decoding cache."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes, types
from hint_jax.layers import dense, dropout, masks
from hint_jax.peft import ia3, lora, prefix, spec, task_rows


class Attention(nn.Module):
  """Unscaled dot-product attention (T5 folds 1/sqrt(K) into the query init).

  Params: `query`, `key`, `value` kernels [D, H, K] (embed, heads, kv) and `out` [H, K, D].
  Cache (decode=True), heads-major: self-attention keeps `cached_key`/`cached_value`
  [B, H, P + T, K], its prefix written once and then one position per step at the position given
  by the caller; cross-attention keeps the projected (and prefixed) encoder keys/values
  [B, H, P + S, K], computed once.

  Attributes:
    num_heads: H.
    head_dim: K.
    dtype: compute dtype; logits and softmax are float32.
    dropout_rate: dropout on attention weights.
    is_cross: cross-attention (keys from `inputs_kv`, cached once when decoding).
  """
  num_heads: int
  head_dim: int
  dtype: jnp.dtype = jnp.float32
  dropout_rate: float = 0.0
  is_cross: bool = False

  def _project(self, name: str, x_BLD: types.Array, site: spec.SiteParams | None):
    scale = 1.0 / self.head_dim if name == "query" else 1.0
    y_BLHK = dense.DenseGeneral((self.num_heads, self.head_dim), (axes.EMBED, axes.HEADS, axes.KV),
                                dtype=self.dtype, init_scale=scale, name=name)(x_BLD)
    if site is not None and site.lora is not None and name in site.lora:
      delta_BLO = lora.lora_delta(x_BLD.astype(self.dtype), site.lora[name])
      y_BLHK = y_BLHK + delta_BLO.reshape(y_BLHK.shape)
    vectors = None if site is None else site.ia3
    if vectors is not None and getattr(vectors, name, None) is not None:  # IA3: keys, values
      y_BLHK = ia3.scale_heads(y_BLHK, getattr(vectors, name))
    return y_BLHK

  def _keys_values(self, inputs_kv_BSD, site, decode, position, cache_length):
    """Keys/values [B, H, P+S, K] (heads-major) including the prefix, using and updating the
    cache. Caches are kept heads-major, so decoding steps never re-lay them out."""
    pfx = None if site is None else site.prefix
    if decode and self.is_cross and self.has_variable("cache", "cached_key"):
      return self.get_variable("cache", "cached_key"), self.get_variable("cache", "cached_value")
    modules = None if site is None else site.modules
    k_BSHK = self._project("key", inputs_kv_BSD, modules)
    v_BSHK = self._project("value", inputs_kv_BSD, modules)
    if decode and not self.is_cross:
      return self._self_attention_cache(k_BSHK, v_BSHK, pfx, position, cache_length)
    if pfx is not None:
      k_BSHK, v_BSHK = prefix.prepend_kv(k_BSHK, v_BSHK, pfx)
    k_BHSK, v_BHSK = _heads_major(k_BSHK), _heads_major(v_BSHK)
    if decode:  # cross-attention: projected (and prefixed) once, when the cache is created
      self.variable("cache", "cached_key", lambda: k_BHSK)
      self.variable("cache", "cached_value", lambda: v_BHSK)
    return k_BHSK, v_BHSK

  def _self_attention_cache(self, k_BTHK, v_BTHK, pfx, position, cache_length):
    """Self-attention decoding cache [B, H, P + T_max, K]: the prefix, written once when the
    cache is created, then one position per step (written at `position`)."""
    initialized = self.has_variable("cache", "cached_key")
    if pfx is not None and not initialized:
      k_BTHK, v_BTHK = prefix.prepend_kv(k_BTHK, v_BTHK, pfx)
    offset = 0 if pfx is None else pfx.key.shape[1]
    k_BHTK, v_BHTK = _heads_major(k_BTHK), _heads_major(v_BTHK)

    def created(x_BHTK):  # zeros, with the prefix (if any) in front
      b, h, length, k = x_BHTK.shape
      empty = jnp.zeros((b, h, offset + (cache_length or length - offset), k), x_BHTK.dtype)
      return empty.at[:, :, :offset].set(x_BHTK[:, :, :offset])
    cached_k = self.variable("cache", "cached_key", created, k_BHTK)
    cached_v = self.variable("cache", "cached_value", created, v_BHTK)
    if not initialized:  # the creating call only computes (discarded) first-token outputs
      return k_BHTK, v_BHTK
    start = (0, 0, offset + position, 0)
    cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k_BHTK, start)
    cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v_BHTK, start)
    return cached_k.value, cached_v.value

  @nn.compact
  def __call__(self, inputs_q_BTD: types.Array, inputs_kv_BSD: types.Array,
               bias_BHTS: types.Array,
               site: spec.SiteParams | task_rows.DecodeSite | None = None,
               enable_dropout: bool = False, decode: bool = False,
               position: types.Array | None = None,
               cache_length: int | None = None) -> types.Array:
    """Attention output [B, T, D].

    Args:
      inputs_q_BTD: queries' inputs.
      inputs_kv_BSD: keys'/values' inputs (same as queries' for self-attention).
      bias_BHTS: additive float32 bias broadcastable to [B, H, T, S] (position + mask), S = the
        key length before any prefix (the prefix columns are added here with bias 0).
      site: this layer's generated params (`spec.layer_slice`), or None; at decoding time a
        `task_rows.DecodeSite` (task-row keys/values read through its index).
      enable_dropout: dropout on the attention weights.
      decode: use/update the cache (see class docstring).
      position: decoding step index (self-attention with an initialized cache).
      cache_length: self-attention cache size when creating it (default: the input length).
    """
    site = task_rows.DecodeSite.of(site)
    modules = None if site is None else site.modules
    q_BTHK = self._project("query", inputs_q_BTD, modules)
    k_BHSK, v_BHSK = self._keys_values(inputs_kv_BSD, site, decode, position, cache_length)
    if site is not None and site.prefix is not None:
      bias_BHTS = prefix.extend_bias(bias_BHTS, site.prefix)
    q_BTHK = dense.constrain(q_BTHK, (axes.ACT_BATCH, axes.ACT_LENGTH, axes.ACT_HEADS, axes.ACT_KV))
    # Heads-major layouts make both products plain batched matmuls (much faster on XLA CPU).
    q_BHTK = _heads_major(q_BTHK)
    logits_BHTS = jnp.einsum("bhtk,bhsk->bhts", q_BHTK, k_BHSK,
                             preferred_element_type=jnp.float32) + bias_BHTS
    shared = None if site is None else site.shared_kv
    if shared is not None:  # task-level keys first: [B, H, T, I + S]
      logits_BHTS = jnp.concatenate([_shared_logits(q_BHTK, shared, site.index), logits_BHTS],
                                    axis=-1)
    weights_BHTS = jax.nn.softmax(logits_BHTS, axis=-1)
    if enable_dropout and self.dropout_rate > 0:
      weights_BHTS = dropout.Dropout(self.dropout_rate)(weights_BHTS)
    weights_BHTS = weights_BHTS.astype(self.dtype)
    out_BHTK = None
    if shared is not None:
      i = shared.key.shape[1]
      out_BHTK = _shared_values(weights_BHTS[..., :i], shared, site.index)
      weights_BHTS = weights_BHTS[..., i:]
    own_BHTK = jnp.einsum("bhts,bhsk->bhtk", weights_BHTS, v_BHSK)
    out_BHTK = own_BHTK if out_BHTK is None else out_BHTK + own_BHTK
    out_BTHK = out_BHTK.transpose(0, 2, 1, 3)
    out_BTD = dense.DenseGeneral((inputs_q_BTD.shape[-1],), (axes.HEADS, axes.KV, axes.EMBED),
                                 num_in_axes=2, dtype=self.dtype, name="out")(out_BTHK)
    if modules is not None and modules.lora is not None and "out" in modules.lora:
      b, t = out_BTHK.shape[:2]
      out_BTD = out_BTD + lora.lora_delta(out_BTHK.reshape(b, t, -1), modules.lora["out"])
    return out_BTD


def _heads_major(x_BSHK: types.Array) -> types.Array:
  return x_BSHK.transpose(0, 2, 1, 3)


def _shared_logits(q_BHTK: types.Array, shared: task_rows.MaskedKV,
                   index_B: types.Array) -> types.Array:
  """Logits (+ padding bias) [B, H, T, I] of each example against its task's shared keys.

  Every example is scored against all U task rows ([B, H, T, U, I]: U times the FLOPs of a
  gather) and its own row is selected: the shared keys are read once, not once per example.
  """
  logits_BHTUI = jnp.einsum("bhtk,uihk->bhtui", q_BHTK, shared.key.astype(q_BHTK.dtype),
                            preferred_element_type=jnp.float32)
  own_BHTI = jnp.take_along_axis(logits_BHTUI, index_B[:, None, None, None, None], axis=3)
  mask_BI = jnp.take(shared.mask, index_B, axis=0)
  return own_BHTI[:, :, :, 0] + masks.padding_bias(mask_BI)


def _shared_values(weights_BHTI: types.Array, shared: task_rows.MaskedKV,
                   index_B: types.Array) -> types.Array:
  """Weighted shared values [B, H, T, K]: weights spread over the task rows by a one-hot."""
  onehot_BU = jax.nn.one_hot(index_B, shared.key.shape[0], dtype=weights_BHTI.dtype)
  # Spread first, then contract with the values, so no [B, I, H, K] copy is ever formed.
  spread_BHTUI = weights_BHTI[:, :, :, None, :] * onehot_BU[:, None, None, :, None]
  return jnp.einsum("bhtui,uihk->bhtk", spread_BHTUI, shared.value.astype(weights_BHTI.dtype))
