"""Pure per-example prefix tuning: prepend generated keys/values and extend the attention bias."""
import jax.numpy as jnp

from hint_jax import types
from hint_jax.layers import masks
from hint_jax.peft import spec, task_rows


def prepend_kv(key_BSHK: types.Array, value_BSHK: types.Array,
               prefix: spec.PrefixKV | task_rows.MaskedKV) -> tuple[types.Array, types.Array]:
  """Prepend ONE layer's post-projection prefix (key/value [B, P, H, K]) to keys and values.

  Returns:
    (key [B, P+S, H, K], value [B, P+S, H, K]) in the dtypes of the inputs.
  """
  key_BPHK = prefix.key.astype(key_BSHK.dtype)
  value_BPHK = prefix.value.astype(value_BSHK.dtype)
  return (jnp.concatenate([key_BPHK, key_BSHK], axis=1),
          jnp.concatenate([value_BPHK, value_BSHK], axis=1))


def extend_bias(bias_XXTS: types.Array,
                prefix: spec.PrefixKV | task_rows.MaskedKV) -> types.Array:
  """Additive attention bias [..., T, S] -> [..., T, P+S] for ONE layer's prefix.

  Prefix columns get 0 (always visible, no position bias), or the padding bias of the mask
  [B, P] of a `task_rows.MaskedKV`.
  """
  length = prefix.key.shape[1]
  if not isinstance(prefix, task_rows.MaskedKV):
    pad = [(0, 0)] * (bias_XXTS.ndim - 1) + [(length, 0)]
    return jnp.pad(bias_XXTS, pad)
  prefix_B11P = masks.padding_bias(prefix.mask)
  lead = jnp.broadcast_shapes(bias_XXTS.shape[:-1], prefix_B11P.shape[:-1])
  return jnp.concatenate([jnp.broadcast_to(prefix_B11P, lead + (length,)),
                          jnp.broadcast_to(bias_XXTS, lead + bias_XXTS.shape[-1:])], axis=-1)


def extend_mask(mask_BS: types.Array, prefix_length: int) -> types.Array:
  """Key padding mask [B, S] (1 = valid) -> [B, P+S] with the prefix marked valid."""
  ones_BP = jnp.ones((mask_BS.shape[0], prefix_length), mask_BS.dtype)
  return jnp.concatenate([ones_BP, mask_BS], axis=1)


def append(prefix: spec.PrefixKV | None, memory: spec.PrefixKV,
           mask_BI: types.Array) -> task_rows.MaskedKV:
  """All-layer prefix [B, N, P, H, K] followed by cached keys/values `memory` [B, N, I, H, K].

  `mask_BI` marks `memory`'s real tokens; the result carries a [B, N, P + I] mask so that padded
  memory positions stay invisible (the generated prefix, if any, is always visible).
  """
  mask_BNI = jnp.broadcast_to(mask_BI[:, None, :] > 0, memory.key.shape[:3])
  if prefix is None:
    return task_rows.MaskedKV(memory.key, memory.value, mask_BNI)
  own = task_rows.masked(prefix)
  return task_rows.MaskedKV(
      key=jnp.concatenate([own.key, memory.key.astype(own.key.dtype)], axis=2),
      value=jnp.concatenate([own.value, memory.value.astype(own.value.dtype)], axis=2),
      mask=jnp.concatenate([own.mask, mask_BNI], axis=2))
