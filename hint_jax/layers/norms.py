"""T5 RMS layer norm (scale only, no mean subtraction, computed in float32)."""
import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from hint_jax import axes, types


class RMSNorm(nn.Module):
  """`x * rsqrt(mean(x**2) + eps) * scale`, statistics in float32, output in `dtype`."""
  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BLD: types.Array) -> types.Array:
    x_BLD = x_BLD.astype(jnp.float32)
    scale_D = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, (axes.EMBED,)),
                         (x_BLD.shape[-1],), jnp.float32)
    var_BL1 = jnp.mean(lax.square(x_BLD), axis=-1, keepdims=True)
    y_BLD = x_BLD * lax.rsqrt(var_BL1 + self.epsilon)
    return (y_BLD * scale_D).astype(self.dtype)
