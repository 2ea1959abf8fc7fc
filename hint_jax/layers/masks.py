"""Additive attention biases from padding and causality (pure jnp; 0 = visible)."""
import jax.numpy as jnp

from hint_jax import types

# Hugging Face adds the float32 minimum for masked positions; we do the same for exact parity.
NEG_INF = float(jnp.finfo(jnp.float32).min)


def padding_bias(mask_BS: types.Array) -> types.Array:
  """Key padding mask [B, S] (nonzero = valid) -> float32 bias [B, 1, 1, S]."""
  return jnp.where(mask_BS[:, None, None, :] > 0, 0.0, NEG_INF).astype(jnp.float32)


def causal_bias(length: int) -> types.Array:
  """[1, 1, T, T] float32 bias letting position t see keys <= t."""
  pos_T = jnp.arange(length)
  return jnp.where(pos_T[None, :] <= pos_T[:, None], 0.0, NEG_INF)[None, None].astype(jnp.float32)


def step_causal_bias(position: types.Array, max_length: int) -> types.Array:
  """Decoding step at `position` (scalar) over a cache of `max_length`: [1, 1, 1, max_length]."""
  keep_T = jnp.arange(max_length) <= position
  return jnp.where(keep_T, 0.0, NEG_INF)[None, None, None].astype(jnp.float32)
