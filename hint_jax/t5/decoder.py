"""T5 decoder layer and stack (self- and cross-attention), with a cache for step decoding."""

import flax.linen as nn
import jax.numpy as jnp

from hint_jax import axes, types
from hint_jax.layers import attention, dense, embed, masks, norms
from hint_jax.layers import mlp as mlp_lib
from hint_jax.peft import spec, task_rows
from hint_jax.t5 import config as config_lib
from hint_jax.t5.encoder import (
  ACT_BLD,
  dropout,
  layers_major,
  norm,
  remat,
  residual,
  scan,
)


class DecoderLayer(nn.Module):
  """Pre-norm self-attention, cross-attention and FFN (+ parallel adapter) blocks."""
  config: config_lib.T5Config

  @nn.compact
  def __call__(self, y_BTD, encoded_BSD, self_bias, cross_bias, self_site, cross_site,
               enable_dropout: bool, decode: bool, position, cache_length=None):
    cfg = self.config
    dtype, rate = cfg.compute_dtype, cfg.dropout_rate

    h_BTD = norm(cfg, "pre_self_attention_layer_norm", y_BTD)
    h_BTD = attention.Attention(cfg.num_heads, cfg.head_dim, dtype, rate, name="self_attention")(
        h_BTD, h_BTD, self_bias, self_site, enable_dropout, decode, position, cache_length)
    y_BTD = residual(y_BTD, h_BTD, rate, enable_dropout)
    h_BTD = norm(cfg, "pre_cross_attention_layer_norm", y_BTD)
    h_BTD = attention.Attention(cfg.num_heads, cfg.head_dim, dtype, rate, is_cross=True,
                                name="encoder_decoder_attention")(
        h_BTD, encoded_BSD, cross_bias, cross_site, enable_dropout, decode)
    y_BTD = residual(y_BTD, h_BTD, rate, enable_dropout)
    h_BTD = norm(cfg, "pre_mlp_layer_norm", y_BTD)
    site = task_rows.DecodeSite.of(self_site)
    bottleneck, index = (None, None) if site is None else site.adapter()
    h_BTD = mlp_lib.Mlp(cfg.d_ff, cfg.feed_forward, dtype, rate, name="mlp")(
        h_BTD, bottleneck, enable_dropout, None if site is None else site.modules.ia3, index)
    return residual(y_BTD, h_BTD, rate, enable_dropout)


class _DecoderStep(DecoderLayer):
  """DecoderLayer (training/scoring, no cache) as an `nn.scan` step: (y, encoded, biases,
  this layer's sites) -> (y, None)."""
  enable_dropout: bool = False

  def __call__(self, y_BTD, encoded_BSD, self_bias, cross_bias, self_site,  # pylint: disable=arguments-differ
               cross_site):
    return super().__call__(y_BTD, encoded_BSD, self_bias, cross_bias, self_site, cross_site,
                            self.enable_dropout, False, None), None


def _slice(site: spec.SiteParams | task_rows.DecodeSite | None, layer: int):
  return None if site is None else spec.layer_slice(site, layer)


class Decoder(nn.Module):
  """Embedding -> layers_0..N-1 -> decoder_norm -> logits (tied or `logits_dense`).

  decode=True: the first call (cache absent) creates the cache sized by the given decoder tokens
  [B, T_max] (self-attention caches zeroed, cross-attention keys/values projected) and, to stay
  cheap, runs only the first token (returned logits are [B, 1, V]); later calls take one token
  [B, 1] at the cached `position` and advance it.
  """
  config: config_lib.T5Config
  embedder: nn.Module

  def _self_bias(self, relpos: nn.Module, length: int, decode: bool):
    """(position bias + causal bias, step position or None)."""
    if decode and self.has_variable("cache", "position"):
      pos_var = self.variable("cache", "position", jnp.zeros, (), jnp.int32)
      max_len = self.get_variable("cache", "max_length_marker").shape[0]
      position = pos_var.value
      bias = relpos(position[None], max_len) + masks.step_causal_bias(position, max_len)
      pos_var.value = position + 1
      return bias, position
    if decode:  # creating the cache: only the first position is computed
      self.variable("cache", "position", jnp.zeros, (), jnp.int32)
      self.variable("cache", "max_length_marker", jnp.zeros, (length,), jnp.int8)
      length = 1
    return relpos(jnp.arange(length), length) + masks.causal_bias(length), None

  @nn.compact
  def __call__(self, encoded_BSD: types.Array, encoder_mask_BS: types.Array,
               tokens_BT: types.Array,
               task_params: spec.TaskParams | task_rows.DecodeParams | None = None,
               enable_dropout: bool = False, decode: bool = False) -> types.Array:
    cfg = self.config
    creating_cache = decode and not self.has_variable("cache", "position")
    cache_length = tokens_BT.shape[1] if creating_cache else None
    if creating_cache:
      tokens_BT = tokens_BT[:, :1]
    y_BTD = self.embedder(tokens_BT.astype(jnp.int32))
    y_BTD = dense.constrain(dropout(y_BTD, cfg.dropout_rate, enable_dropout), ACT_BLD)
    relpos = embed.RelativePositionBias(
        cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance, cfg.num_heads,
        bidirectional=False, name="relpos_bias")
    self_bias, position = self._self_bias(relpos, cache_length or tokens_BT.shape[1], decode)
    cross_bias = masks.padding_bias(encoder_mask_BS)
    encoded_BSD = encoded_BSD.astype(cfg.compute_dtype)
    self_site = None if task_params is None else task_params.decoder_self
    cross_site = None if task_params is None else task_params.decoder_cross
    # Training only: a decoding step keeps nothing for a backward pass. Static: enable_dropout,
    # decode, cache_length.
    if cfg.scan_layers and decode:
      raise ValueError("step decoding needs the unrolled layer layout: decode through "
                       "t5.decoding (it converts a scanned model with t5.model.unscanned)")
    if cfg.scan_layers:
      stack = scan(_DecoderStep, cfg.remat_policy, cfg.num_decoder_layers,
                   in_axes=(nn.broadcast,) * 3 + (0, 0))
      y_BTD, _ = stack(cfg, enable_dropout, name="layers")(
          y_BTD, encoded_BSD, self_bias, cross_bias, layers_major(self_site),
          layers_major(cross_site))
    layer_cls = remat(DecoderLayer, "none" if decode else cfg.remat_policy, (7, 8, 10))
    for i in range(0 if cfg.scan_layers else cfg.num_decoder_layers):
      y_BTD = layer_cls(cfg, name=f"layers_{i}")(
          y_BTD, encoded_BSD, self_bias, cross_bias, _slice(self_site, i), _slice(cross_site, i),
          enable_dropout, decode, position, cache_length)
    y_BTD = norms.RMSNorm(cfg.layer_norm_epsilon, cfg.compute_dtype, name="decoder_norm")(y_BTD)
    y_BTD = dropout(y_BTD, cfg.dropout_rate, enable_dropout)
    if cfg.tie_word_embeddings:
      logits_BTV = self.embedder.attend(y_BTD * cfg.d_model**-0.5)
    else:
      logits_BTV = dense.DenseGeneral((cfg.vocab_size,), (axes.EMBED, axes.VOCAB),
                                      dtype=cfg.compute_dtype, output_dtype=jnp.float32,
                                      name="logits_dense")(y_BTD)
    return dense.constrain(logits_BTV, (axes.ACT_BATCH, axes.ACT_LENGTH, axes.ACT_VOCAB))
