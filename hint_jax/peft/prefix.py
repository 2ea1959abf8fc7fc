"""Pure per-example prefix tuning: prepend generated keys/values and extend the attention bias."""
import jax.numpy as jnp

from hint_jax import types
from hint_jax.peft import spec


def prepend_kv(key_BSHK: types.Array, value_BSHK: types.Array,
               prefix: spec.PrefixKV) -> tuple[types.Array, types.Array]:
  """Prepend ONE layer's post-projection prefix (key/value [B, P, H, K]) to keys and values.

  Returns:
    (key [B, P+S, H, K], value [B, P+S, H, K]) in the dtypes of the inputs.
  """
  key_BPHK = prefix.key.astype(key_BSHK.dtype)
  value_BPHK = prefix.value.astype(value_BSHK.dtype)
  return (jnp.concatenate([key_BPHK, key_BSHK], axis=1),
          jnp.concatenate([value_BPHK, value_BSHK], axis=1))


def extend_bias(bias_XXTS: types.Array, prefix_length: int) -> types.Array:
  """Additive attention bias [..., T, S] -> [..., T, P+S]; prefix columns get 0 (always visible,
  no position bias)."""
  pad = [(0, 0)] * (bias_XXTS.ndim - 1) + [(prefix_length, 0)]
  return jnp.pad(bias_XXTS, pad)


def extend_mask(mask_BS: types.Array, prefix_length: int) -> types.Array:
  """Key padding mask [B, S] (1 = valid) -> [B, P+S] with the prefix marked valid."""
  ones_BP = jnp.ones((mask_BS.shape[0], prefix_length), mask_BS.dtype)
  return jnp.concatenate([ones_BP, mask_BS], axis=1)
