"""DenseGeneral with logical axis names on its kernel (no bias: T5 has none)."""
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from hint_jax import types

Initializer = Callable[..., types.Array]


def fan_in_init(scale: float = 1.0) -> Callable[[int], Initializer]:
  """Normal init with variance `scale / fan_in`, fan-in over the first `num_in` kernel axes."""
  def make(num_in: int, num_out: int) -> Initializer:
    return nn.initializers.variance_scaling(
        scale, "fan_in", "normal", in_axis=tuple(range(num_in)),
        out_axis=tuple(range(num_in, num_in + num_out)))
  return make


class DenseGeneral(nn.Module):
  """Contracts the trailing `num_in_axes` axes of the input with a kernel [*in, *features].

  Attributes:
    features: output feature shape.
    kernel_axes: logical names of all kernel axes (from `hint_jax.axes`).
    num_in_axes: how many trailing input axes are contracted.
    dtype: compute dtype (the kernel is stored in float32 and cast).
    output_dtype: dtype of the result (e.g. float32 logits); defaults to `dtype`.
    init_scale: variance scale of the fan-in normal init.
  """
  features: Sequence[int]
  kernel_axes: Sequence[str]
  num_in_axes: int = 1
  dtype: jnp.dtype = jnp.float32
  output_dtype: jnp.dtype | None = None
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x: types.Array) -> types.Array:
    features = tuple(self.features)
    in_shape = x.shape[x.ndim - self.num_in_axes:]
    init = fan_in_init(self.init_scale)(self.num_in_axes, len(features))
    kernel = self.param("kernel", nn.with_logical_partitioning(init, tuple(self.kernel_axes)),
                        in_shape + features, jnp.float32)
    out_dtype = self.output_dtype or self.dtype
    # One 2-D GEMM [rows, in] @ [in, out]: forward and both gradients stay plain matmuls.
    lead = x.shape[:x.ndim - self.num_in_axes]
    x_2d = x.astype(self.dtype).reshape(-1, math.prod(in_shape))
    kernel_2d = jnp.asarray(kernel, self.dtype).reshape(math.prod(in_shape), -1)
    y_2d = jnp.matmul(x_2d, kernel_2d, preferred_element_type=out_dtype)
    return y_2d.astype(out_dtype).reshape(lead + features)


def constrain(x: types.Array, names: Sequence[str | None]) -> types.Array:
  """Activation sharding constraint by logical names (a no-op without mesh rules)."""
  return nn.with_logical_constraint(x, tuple(names))


