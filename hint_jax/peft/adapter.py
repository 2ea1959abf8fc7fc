"""Pure parallel bottleneck adapter `gelu(u @ down + down_bias) @ up + up_bias`."""
import jax
import jax.numpy as jnp

from hint_jax import types
from hint_jax.peft import spec


def adapter_output(u_BLD: types.Array, bottleneck: spec.Bottleneck,
                   index_B: types.Array | None = None) -> types.Array:
  """Output of ONE layer's parallel adapter, added beside the FFN (HINT, DESIGN §3.4).

  Args:
    u_BLD: the pre-FFN layer-norm output [B, L, D] (compute dtype).
    bottleneck: one layer's weights (after `spec.layer_slice`): per example, down [B, D, A],
      down_bias [B, A], up [B, A, D], up_bias [B, D]; or task rows [U, ...] with `index_B`.
    index_B: [B] int32, each example's task row when `bottleneck` holds task rows
      (`task_rows.DecodeSite`); None for per-example weights.

  Returns:
    [B, L, D] in the dtype of `u_BLD`. GELU is the tanh approximation (flax/T5X default).
  """
  if index_B is not None:
    return _task_rows_output(u_BLD, bottleneck, index_B)
  dtype = u_BLD.dtype
  h_BLA = jnp.einsum("bld,bda->bla", u_BLD, bottleneck.down.astype(dtype))
  h_BLA = jax.nn.gelu(h_BLA + bottleneck.down_bias.astype(dtype)[:, None, :], approximate=True)
  out_BLD = jnp.einsum("bla,bad->bld", h_BLA, bottleneck.up.astype(dtype))
  return out_BLD + bottleneck.up_bias.astype(dtype)[:, None, :]


def _task_rows_output(u_BLD: types.Array, bottleneck: spec.Bottleneck,
                      index_B: types.Array) -> types.Array:
  """The adapter with task-row weights [U, ...]: every example goes through all U rows' `down`
  (U times the FLOPs) and keeps its own, so each weight is read once per call instead of once per
  example. Meant for decoding steps (L = 1, few tasks per batch), where reading dominates."""
  dtype = u_BLD.dtype
  onehot_BU = jax.nn.one_hot(index_B, bottleneck.down.shape[0], dtype=dtype)
  h_BLUA = jnp.einsum("bld,uda->blua", u_BLD, bottleneck.down.astype(dtype))
  h_BLA = jnp.einsum("blua,bu->bla", h_BLUA, onehot_BU)
  h_BLA = h_BLA + jnp.take(bottleneck.down_bias, index_B, axis=0).astype(dtype)[:, None, :]
  h_BLA = jax.nn.gelu(h_BLA, approximate=True)
  # Spread over the task rows by the one-hot, then contract with `up` ([B, L, U, A], no copy
  # of the weights per example).
  spread_BLUA = h_BLA[:, :, None, :] * onehot_BU[:, None, :, None]
  out_BLD = jnp.einsum("blua,uad->bld", spread_BLUA, bottleneck.up.astype(dtype))
  return out_BLD + jnp.take(bottleneck.up_bias, index_B, axis=0).astype(dtype)[:, None, :]
