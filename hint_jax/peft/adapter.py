"""Pure per-example parallel bottleneck adapter `gelu(u @ down + down_bias) @ up + up_bias`."""
import jax
import jax.numpy as jnp

from hint_jax import types
from hint_jax.peft import spec


def adapter_output(u_BLD: types.Array, bottleneck: spec.Bottleneck) -> types.Array:
  """Output of ONE layer's parallel adapter, added beside the FFN (HINT, DESIGN §3.4).

  Args:
    u_BLD: the pre-FFN layer-norm output [B, L, D] (compute dtype).
    bottleneck: one layer's weights (after `spec.layer_slice`): down [B, D, A], down_bias [B, A],
      up [B, A, D], up_bias [B, D].

  Returns:
    [B, L, D] in the dtype of `u_BLD`. GELU is the tanh approximation (flax/T5X default).
  """
  dtype = u_BLD.dtype
  h_BLA = jnp.einsum("bld,bda->bla", u_BLD, bottleneck.down.astype(dtype))
  h_BLA = jax.nn.gelu(h_BLA + bottleneck.down_bias.astype(dtype)[:, None, :], approximate=True)
  out_BLD = jnp.einsum("bla,bad->bld", h_BLA, bottleneck.up.astype(dtype))
  return out_BLD + bottleneck.up_bias.astype(dtype)[:, None, :]
