"""Pure IA3 (Liu et al. 2022): per-example vectors rescaling keys, values and FFN activations."""

from hint_jax import types


def scale_heads(y_BLHK: types.Array, vector_BX: types.Array) -> types.Array:
  """Projected keys or values [B, L, H, K] times ONE layer's vector [B, H*K] (1 = identity)."""
  b, _, h, k = y_BLHK.shape
  return y_BLHK * vector_BX.astype(y_BLHK.dtype).reshape(b, 1, h, k)


def scale_hidden(h_BLF: types.Array, vector_BF: types.Array) -> types.Array:
  """FFN hidden activation [B, L, F] times ONE layer's vector [B, F] (1 = identity)."""
  return h_BLF * vector_BF.astype(h_BLF.dtype)[:, None, :]
