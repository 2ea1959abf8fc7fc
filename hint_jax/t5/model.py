"""`T5`: the encoder-decoder backbone (encode, decode, full forward) with TaskParams hooks."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import types
from hint_jax.layers import embed
from hint_jax.peft import spec, task_rows
from hint_jax.t5 import config as config_lib
from hint_jax.t5 import decoder as decoder_lib
from hint_jax.t5 import encoder as encoder_lib


class T5(nn.Module):
  """T5.1.1 / original T5 in T5X parameter layout; knows nothing about hypernetworks.

  Parameter tree (all float32, logical axes in brackets):
    token_embedder/embedding [vocab, embed]   (shared by encoder and decoder)
    encoder/relpos_bias/rel_embedding [heads, relpos_buckets]
    encoder/layers_i/pre_attention_layer_norm/scale [embed]
    encoder/layers_i/attention/{query,key,value}/kernel [embed, heads, kv]
    encoder/layers_i/attention/out/kernel [heads, kv, embed]
    encoder/layers_i/pre_mlp_layer_norm/scale [embed]
    encoder/layers_i/mlp/{wi_0,wi_1 | wi}/kernel [embed, mlp]; mlp/wo/kernel [mlp, embed]
    encoder/encoder_norm/scale
    decoder/relpos_bias/rel_embedding
    decoder/layers_i/{pre_self_attention_layer_norm, self_attention,
                      pre_cross_attention_layer_norm, encoder_decoder_attention,
                      pre_mlp_layer_norm, mlp}
    decoder/decoder_norm/scale
  With `scan_layers` each stack's `layers_i` subtrees are one `layers` subtree whose leaves are
  stacked [N, ...] (logical axis `layers` first); `scanned` / `unscanned` convert.
    decoder/logits_dense/kernel [embed, vocab]  (absent when tie_word_embeddings)

  `task_params=None`, or all-None SiteParams, gives exactly the plain model.
  """
  config: config_lib.T5Config

  def setup(self):
    cfg = self.config
    self.token_embedder = embed.Embed(cfg.vocab_size, cfg.d_model, cfg.compute_dtype)
    self.encoder = encoder_lib.Encoder(cfg, self.token_embedder)
    self.decoder = decoder_lib.Decoder(cfg, self.token_embedder)

  def encode(self, encoder_input_tokens: types.Array,
             task_params: spec.TaskParams | None = None,
             enable_dropout: bool = False) -> types.Array:
    """Encoded inputs [B, L, D] (compute dtype) from tokens [B, L] (pad 0).

    Uses `task_params.encoder` when given; None = plain T5 (e.g. for instructions).
    """
    site = None if task_params is None else task_params.encoder
    return self.encoder(encoder_input_tokens, site, enable_dropout)

  def decode(self, encoded: types.Array, encoder_mask: types.Array,
             decoder_input_tokens: types.Array,
             task_params: spec.TaskParams | task_rows.DecodeParams | None = None,
             enable_dropout: bool = False, decode: bool = False) -> types.Array:
    """Float32 logits [B, T, V].

    Args:
      encoded: [B, S, D] any encoder output (e.g. instruction and input concatenated).
      encoder_mask: [B, S], 1 = valid.
      decoder_input_tokens: [B, T] targets shifted right (start id 0).
      task_params: uses `decoder_self` (self-attention + adapter) and `decoder_cross`; at
        decoding time possibly their `task_rows.DecodeParams` layout.
      enable_dropout: dropout on (needs a "dropout" rng).
      decode: one-step autoregressive mode with the mutable "cache" collection: the first call
        with [B, T_max] tokens creates it (and returns logits of the first position only,
        [B, 1, V]); each later call takes [B, 1] tokens. See `t5.decoding.init_cache`.
    """
    return self.decoder(encoded, encoder_mask, decoder_input_tokens, task_params,
                        enable_dropout, decode)

  def __call__(self, encoder_input_tokens: types.Array, decoder_input_tokens: types.Array,
               task_params: spec.TaskParams | None = None,
               enable_dropout: bool = False) -> types.Array:
    """Full forward: logits [B, T, V] (float32); encoder mask = tokens > 0."""
    encoded_BLD = self.encode(encoder_input_tokens, task_params, enable_dropout)
    mask_BL = (encoder_input_tokens > 0).astype(jnp.int32)
    return self.decode(encoded_BLD, mask_BL, decoder_input_tokens, task_params, enable_dropout)


_LAYER = re.compile(r"layers_(\d+)$")


def scanned(params: types.PyTree) -> types.PyTree:
  """Params (or any tree of the same layout) with every `layers_0..N-1` group stacked into one
  `layers` subtree of [N, ...] leaves: the layout of `T5Config(scan_layers=True)`."""
  if not isinstance(params, dict):
    return params
  layer_keys = sorted((k for k in params if _LAYER.match(k)), key=lambda k: int(k[7:]))
  out = {k: scanned(v) for k, v in params.items() if k not in layer_keys}
  if layer_keys:
    if [int(k[7:]) for k in layer_keys] != list(range(len(layer_keys))) or "layers" in out:
      raise ValueError(f"cannot stack layers {layer_keys}: not layers_0..N-1")
    out["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *(params[k] for k in layer_keys))
  return out


def unscanned(params: types.PyTree) -> types.PyTree:
  """Inverse of `scanned`: every `layers` subtree of [N, ...] leaves -> `layers_0..N-1`."""
  if not isinstance(params, dict):
    return params
  out = {k: unscanned(v) for k, v in params.items() if k != "layers"}
  if isinstance(params.get("layers"), dict):
    stacked = params["layers"]
    n = jax.tree.leaves(stacked)[0].shape[0]
    out.update({f"layers_{i}": jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)})
  return out
