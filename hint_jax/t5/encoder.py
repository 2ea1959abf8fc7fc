"""T5 encoder layer and stack, with optional per-example encoder `SiteParams`."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes, types
from hint_jax.layers import attention, dense, embed, masks, norms
from hint_jax.layers import dropout as dropout_lib
from hint_jax.layers import mlp as mlp_lib
from hint_jax.peft import spec
from hint_jax.t5 import config as config_lib

ACT_BLD = (axes.ACT_BATCH, axes.ACT_LENGTH, axes.ACT_EMBED)

# What the backward pass keeps of a layer (`T5Config.remat_policy`); None = everything.
_SAVEABLE = {"minimal": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
             "full": jax.checkpoint_policies.nothing_saveable}


def remat(layer_cls: type[nn.Module], policy: str, static_argnums: tuple[int, ...]):
  """`layer_cls` rematerialised under `policy` ("none": unchanged). Param names are kept.

  `static_argnums` count `self` as 0 (flax's convention) and name the Python-valued arguments.
  """
  if policy == "none":
    return layer_cls
  return nn.remat(layer_cls, policy=_SAVEABLE[policy], static_argnums=static_argnums)


def scan(step_cls: type[nn.Module], policy: str, length: int, in_axes: tuple):
  """`step_cls` (a `(carry, *xs) -> (carry, None)` layer) applied `length` times by `nn.scan`.

  The layer's params gain a leading `layers` axis (`t5.model` documents the scanned layout):
  one layer is traced and compiled instead of `length`, and the backward pass is a loop that
  rematerialises one layer at a time, so activation memory does not grow with depth (an
  unrolled stack lets XLA schedule several layers' recomputations at once). The dropout rng is
  split per layer. `in_axes` as `nn.scan`'s: `nn.broadcast` or the scanned axis of each x.
  """
  if policy != "none":  # scan already keeps recomputation apart from the forward pass
    step_cls = nn.remat(step_cls, policy=_SAVEABLE[policy], prevent_cse=False)
  return nn.scan(step_cls, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                 in_axes=in_axes, length=length, metadata_params={nn.PARTITION_NAME: axes.LAYERS})


def layers_major(site: spec.SiteParams | None) -> spec.SiteParams | None:
  """Site params [B, N, ...] -> [N, B, ...], the layout a scan over layers consumes."""
  return None if site is None else jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), site)


def dropout(x: types.Array, rate: float, enabled: bool) -> types.Array:
  """Dropout (call inside a compact method) when enabled and rate > 0; identity otherwise."""
  if not enabled or rate == 0:
    return x
  return dropout_lib.Dropout(rate)(x)


def norm(cfg: config_lib.T5Config, name: str, x_BLD: types.Array) -> types.Array:
  """A layer's pre-norm (call inside a compact method), its output laid out like the residual
  stream: each projection then reads one copy, with no re-gather of its own (see `residual`)."""
  return dense.constrain(norms.RMSNorm(cfg.layer_norm_epsilon, cfg.compute_dtype, name=name)(
      x_BLD), ACT_BLD)


def residual(x_BLD: types.Array, h_BLD: types.Array, rate: float, enabled: bool) -> types.Array:
  """`x + dropout(h)`, constrained to the residual-stream layout (batch over data, embed
  replicated over model): a block's model-parallel partial sums are then all-reduced once in
  the compute dtype, instead of being left sharded over `embed` and gathered again (in float32,
  after the next norm's upcast) by every consumer."""
  return dense.constrain(x_BLD + dropout(h_BLD, rate, enabled), ACT_BLD)


class EncoderLayer(nn.Module):
  """Pre-norm self-attention block then pre-norm FFN block (+ parallel adapter)."""
  config: config_lib.T5Config

  @nn.compact
  def __call__(self, x_BLD, bias_BHLL, site: spec.SiteParams | None, enable_dropout: bool):
    cfg = self.config
    dtype = cfg.compute_dtype
    h_BLD = norm(cfg, "pre_attention_layer_norm", x_BLD)
    h_BLD = attention.Attention(cfg.num_heads, cfg.head_dim, dtype, cfg.dropout_rate,
                                name="attention")(h_BLD, h_BLD, bias_BHLL, site, enable_dropout)
    x_BLD = residual(x_BLD, h_BLD, cfg.dropout_rate, enable_dropout)
    h_BLD = norm(cfg, "pre_mlp_layer_norm", x_BLD)
    h_BLD = mlp_lib.Mlp(cfg.d_ff, cfg.feed_forward, dtype, cfg.dropout_rate, name="mlp")(
        h_BLD, None if site is None else site.adapter, enable_dropout,
        None if site is None else site.ia3)
    return residual(x_BLD, h_BLD, cfg.dropout_rate, enable_dropout)


class _EncoderStep(EncoderLayer):
  """EncoderLayer as an `nn.scan` step: (x, bias, this layer's site) -> (x, None)."""
  enable_dropout: bool = False

  def __call__(self, x_BLD, bias_BHLL, site):  # pylint: disable=arguments-differ
    return super().__call__(x_BLD, bias_BHLL, site, self.enable_dropout), None


class Encoder(nn.Module):
  """Token embedding -> layers_0..N-1 (or one scanned `layers`) -> encoder_norm. One `relpos_bias`
  table per stack."""
  config: config_lib.T5Config
  embedder: nn.Module

  @nn.compact
  def __call__(self, tokens_BL: types.Array, site: spec.SiteParams | None = None,
               enable_dropout: bool = False) -> types.Array:
    cfg = self.config
    x_BLD = self.embedder(tokens_BL.astype(jnp.int32))
    x_BLD = dense.constrain(dropout(x_BLD, cfg.dropout_rate, enable_dropout), ACT_BLD)
    length = tokens_BL.shape[1]
    pos_bias_1HLL = embed.RelativePositionBias(
        cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance, cfg.num_heads,
        bidirectional=True, name="relpos_bias")(jnp.arange(length), length)
    bias_BHLL = pos_bias_1HLL + masks.padding_bias(tokens_BL > 0)
    if cfg.scan_layers:
      stack = scan(_EncoderStep, cfg.remat_policy, cfg.num_encoder_layers,
                   in_axes=(nn.broadcast, 0))
      x_BLD, _ = stack(cfg, enable_dropout, name="layers")(x_BLD, bias_BHLL, layers_major(site))
    layer_cls = remat(EncoderLayer, cfg.remat_policy, static_argnums=(4,))  # enable_dropout
    for i in range(0 if cfg.scan_layers else cfg.num_encoder_layers):
      site_i = None if site is None else spec.layer_slice(site, i)
      x_BLD = layer_cls(cfg, name=f"layers_{i}")(x_BLD, bias_BHLL, site_i, enable_dropout)
    x_BLD = norms.RMSNorm(cfg.layer_norm_epsilon, cfg.compute_dtype, name="encoder_norm")(x_BLD)
    return dense.constrain(dropout(x_BLD, cfg.dropout_rate, enable_dropout), ACT_BLD)
