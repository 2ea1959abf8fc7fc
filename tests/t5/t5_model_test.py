"""T5 module semantics: config, logical axes, TaskParams hooks, fusion, causality, dropout."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import t5_tiny

from hint_jax import axes
from hint_jax.peft import spec
from hint_jax.t5 import T5, T5Config

CONFIG = T5Config.preset("tiny", dropout_rate=0.3)
B, L, T = 3, 8, 6


@pytest.fixture(scope="module")
def params():
  return t5_tiny.random_params(CONFIG)


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  enc = t5_tiny.padded_tokens(rng, B, L, min_len=3) % CONFIG.vocab_size
  dec = rng.integers(2, CONFIG.vocab_size, (B, T))
  dec[:, 0] = 0
  return jnp.asarray(enc), jnp.asarray(dec)


def test_config_validation_and_presets():
  assert T5Config.preset("small").dims == spec.BackboneDims(512, 6, 64, 8, 8, d_ff=1024)
  assert T5Config.preset("xxl").d_ff == 10240
  tiny = T5Config.preset("tiny", dtype="bfloat16")
  assert tiny.compute_dtype == jnp.bfloat16 and tiny.d_model != tiny.num_heads * tiny.head_dim
  with pytest.raises(ValueError, match="feed_forward"):
    T5Config.preset("tiny", feed_forward="swiglu")
  with pytest.raises(ValueError, match="d_model"):
    T5Config.preset("tiny", d_model=0)
  with pytest.raises(ValueError, match="dtype"):
    T5Config.preset("tiny", dtype="int8")
  with pytest.raises(ValueError, match="unknown T5 preset"):
    T5Config.preset("huge")
  with pytest.raises(dataclasses.FrozenInstanceError):
    tiny.d_model = 3


@pytest.mark.parametrize("tie", [False, True])
def test_every_param_has_logical_axes(tie):
  config = dataclasses.replace(CONFIG, tie_word_embeddings=tie, feed_forward="relu" if tie
                               else "gated-gelu")
  abstract = jax.eval_shape(T5(config).init, jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32),
                            jnp.ones((1, 3), jnp.int32))["params"]
  leaves = jax.tree.leaves(abstract, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  # embedder, 2 relpos, 2 final norms, 9 per encoder / 14 per decoder layer, logits_dense;
  # the ReLU FFN has one input kernel fewer per layer.
  per_layer = 0 if tie else 1
  assert len(leaves) == 5 + 2 * (9 - 1 + per_layer) + 2 * (14 - 1 + per_layer) + per_layer
  for leaf in leaves:
    assert isinstance(leaf, nn.LogicallyPartitioned)
    assert len(leaf.names) == leaf.value.ndim
    assert set(leaf.names) <= set(axes.PARAM_AXES)
    assert leaf.value.dtype == jnp.float32


def test_plain_model_equals_all_none_site_params(params, batch):
  fwd = t5_tiny.jit_apply(CONFIG)
  empty = spec.TaskParams(spec.SiteParams(), spec.SiteParams(), spec.SiteParams())
  plain = fwd({"params": params}, *batch)
  np.testing.assert_array_equal(fwd({"params": params}, *batch, empty), plain)
  encoded = t5_tiny.jit_apply(CONFIG, "encode")({"params": params}, batch[0])
  split = t5_tiny.jit_apply(CONFIG, "decode")({"params": params}, encoded, batch[0] > 0, batch[1])
  np.testing.assert_allclose(split, plain, atol=1e-6)


def test_decode_with_fused_instruction_and_masked_columns(params, batch):
  """decode takes any S: masked extra columns are ignored, a visible instruction is not."""
  enc, dec = batch
  def decode(*args):
    return t5_tiny.jit_apply(CONFIG, "decode")({"params": params}, *args)
  encoded = t5_tiny.jit_apply(CONFIG, "encode")({"params": params}, enc)
  mask = (enc > 0).astype(jnp.int32)
  instr = jax.random.normal(jax.random.PRNGKey(1), (B, 4, CONFIG.d_model))
  base = decode(encoded, mask, dec)
  hidden = decode(jnp.concatenate([instr, encoded], 1),
                  jnp.concatenate([jnp.zeros((B, 4), jnp.int32), mask], 1), dec)
  shown = decode(jnp.concatenate([instr, encoded], 1),
                 jnp.concatenate([jnp.ones((B, 4), jnp.int32), mask], 1), dec)
  np.testing.assert_allclose(hidden, base, atol=1e-5)
  assert float(jnp.abs(shown - base).min(axis=-1).max()) > 1e-4


def test_decoder_is_causal(params, batch):
  enc, dec = batch
  fwd = t5_tiny.jit_apply(CONFIG)
  changed = dec.at[:, 4:].set((dec[:, 4:] + 7) % CONFIG.vocab_size)
  a, b = fwd({"params": params}, enc, dec), fwd({"params": params}, enc, changed)
  np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-6)
  assert float(jnp.abs(a[:, 4:] - b[:, 4:]).max()) > 1e-3


def test_dropout_only_when_enabled(params, batch):
  fwd = t5_tiny.jit_apply(CONFIG)
  plain = fwd({"params": params}, *batch)
  rngs = {"dropout": jax.random.key(0, impl="rbg")}
  one = fwd({"params": params}, *batch, enable_dropout=True, rngs=rngs)
  again = fwd({"params": params}, *batch, enable_dropout=True, rngs=rngs)
  np.testing.assert_array_equal(one, again)
  assert float(jnp.abs(one - plain).max()) > 1e-3


def test_bfloat16_compute_is_close_and_keeps_fp32_logits(params, batch):
  bf16 = dataclasses.replace(CONFIG, dtype="bfloat16")
  ref = t5_tiny.jit_apply(CONFIG)({"params": params}, *batch)
  low = t5_tiny.jit_apply(bf16)({"params": params}, *batch)
  assert low.dtype == jnp.float32
  assert float(jnp.abs(low - ref).max()) < 0.1 * float(jnp.abs(ref).max())


def test_prefix_is_visible_to_every_position(params, batch):
  peft = spec.PeftConfig(adapter_size=None, prefix_length=2)
  task_params = t5_tiny.random_task_params(CONFIG.dims, B, seed=2, peft=peft)
  def encode(tp):
    return t5_tiny.jit_apply(CONFIG, "encode")({"params": params}, batch[0], tp)
  base = encode(task_params)
  key = task_params.encoder.prefix.key
  moved = dataclasses.replace(task_params, encoder=dataclasses.replace(
      task_params.encoder, prefix=spec.PrefixKV(key.at[:, 0].add(1.0),
                                                task_params.encoder.prefix.value)))
  diff = jnp.abs(encode(moved) - base).max(axis=-1)  # [B, L]
  assert float(diff.min()) > 1e-5
