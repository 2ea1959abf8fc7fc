"""T5 feed-forward block (gated-GELU or ReLU) with an optional parallel adapter."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes, types
from hint_jax.layers import dense, dropout
from hint_jax.peft import adapter, ia3, spec


class Mlp(nn.Module):
  """`wo(gelu_tanh(u wi_0) * (u wi_1))` (gated-gelu) or `wo(relu(u wi))` (relu).

  Kernels: wi_0/wi_1/wi [D, F] (embed, mlp), wo [F, D] (mlp, embed). With a `Bottleneck`,
  returns FFN(u) + adapter(u) (HINT's parallel adapter, DESIGN §3.4; task rows read through
  `bottleneck_index` when given, see `adapter.adapter_output`). With IA3 `Scaling`
  holding an `mlp` vector, the hidden activation is rescaled by it before `wo`.
  """
  d_ff: int
  feed_forward: str = "gated-gelu"
  dtype: jnp.dtype = jnp.float32
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, u_BLD: types.Array, bottleneck: spec.Bottleneck | None = None,
               enable_dropout: bool = False, scaling: spec.Scaling | None = None,
               bottleneck_index: types.Array | None = None) -> types.Array:
    def wi(name):
      return dense.DenseGeneral((self.d_ff,), (axes.EMBED, axes.MLP), dtype=self.dtype,
                                name=name)(u_BLD)
    if self.feed_forward == "gated-gelu":
      h_BLF = jax.nn.gelu(wi("wi_0"), approximate=True) * wi("wi_1")
    else:
      h_BLF = jax.nn.relu(wi("wi"))
    h_BLF = dense.constrain(h_BLF, (axes.ACT_BATCH, axes.ACT_LENGTH, axes.ACT_MLP))
    if scaling is not None and scaling.mlp is not None:
      h_BLF = ia3.scale_hidden(h_BLF, scaling.mlp)
    if enable_dropout and self.dropout_rate > 0:
      h_BLF = dropout.Dropout(self.dropout_rate)(h_BLF)
    out_BLD = dense.DenseGeneral((u_BLD.shape[-1],), (axes.MLP, axes.EMBED), dtype=self.dtype,
                                 name="wo")(h_BLF)
    if bottleneck is not None:
      out_BLD = out_BLD + adapter.adapter_output(u_BLD.astype(self.dtype), bottleneck,
                                                 bottleneck_index)
    return out_BLD
