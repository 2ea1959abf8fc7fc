"""Pure per-example LoRA: the low-rank delta `x @ a @ b * scale` of one projection."""
import jax.numpy as jnp

from hint_jax import types
from hint_jax.peft import spec


def lora_delta(x_BLI: types.Array, low_rank: spec.LowRank) -> types.Array:
  """Per-example low-rank delta of one projection for ONE layer.

  Args:
    x_BLI: projection input [B, L, In] (compute dtype).
    low_rank: one layer's factors (after `spec.layer_slice`): a [B, In, R], b [B, R, Out].

  Returns:
    [B, L, Out] in the dtype of `x_BLI`; add it to the projection's output.
  """
  a_BIR = low_rank.a.astype(x_BLI.dtype)
  b_BRO = low_rank.b.astype(x_BLI.dtype)
  h_BLR = jnp.einsum("bli,bir->blr", x_BLI, a_BIR)
  return jnp.einsum("blr,bro->blo", h_BLR, b_BRO) * jnp.asarray(low_rank.scale, x_BLI.dtype)


def merged_kernel(kernel_IO: types.Array, low_rank: spec.LowRank) -> types.Array:
  """Per-example kernels with the delta merged in: [In, Out] + a @ b * scale -> [B, In, Out]."""
  delta_BIO = jnp.einsum("bir,bro->bio", low_rank.a, low_rank.b) * low_rank.scale
  return kernel_IO[None] + delta_BIO.astype(kernel_IO.dtype)
