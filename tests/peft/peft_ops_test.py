"""PEFT ops against numpy references, and their effect inside the T5 model."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.peft import adapter, lora, prefix, spec
from hint_jax.t5 import T5, T5Config

RNG = np.random.default_rng(0)
CONFIG = T5Config.preset("tiny", num_decoder_layers=1)
B, L = 2, 7


def _normal(*shape):
  return RNG.standard_normal(shape).astype(np.float32)


def _gelu_tanh(x):
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def test_lora_delta_matches_numpy_and_merged_kernel():
  x, kernel = _normal(B, L, 12), _normal(12, 15)
  low_rank = spec.LowRank(a=_normal(B, 12, 3), b=_normal(3, 15)[None].repeat(B, 0) * 0.5,
                          scale=2.0)
  expected = np.einsum("bli,bir,bro->blo", x, low_rank.a, low_rank.b) * 2.0
  np.testing.assert_allclose(lora.lora_delta(jnp.asarray(x), low_rank), expected, rtol=1e-4,
                             atol=1e-4)
  merged = lora.merged_kernel(jnp.asarray(kernel), low_rank)
  np.testing.assert_allclose(np.einsum("bli,bio->blo", x, merged),
                             x @ kernel + expected, rtol=1e-4, atol=1e-4)


def test_adapter_matches_numpy():
  u = _normal(B, L, 12)
  b = spec.Bottleneck(down=_normal(B, 12, 4), down_bias=_normal(B, 4), up=_normal(B, 4, 12),
                      up_bias=_normal(B, 12))
  h = _gelu_tanh(np.einsum("bld,bda->bla", u, b.down) + b.down_bias[:, None])
  expected = np.einsum("bla,bad->bld", h, b.up) + b.up_bias[:, None]
  np.testing.assert_allclose(adapter.adapter_output(jnp.asarray(u), b), expected, rtol=1e-4,
                             atol=1e-4)


def test_prefix_prepend_bias_and_mask():
  k, v = _normal(B, L, 3, 5), _normal(B, L, 3, 5)
  p = spec.PrefixKV(key=_normal(B, 2, 3, 5), value=_normal(B, 2, 3, 5))
  k2, v2 = prefix.prepend_kv(jnp.asarray(k), jnp.asarray(v), p)
  np.testing.assert_array_equal(k2, np.concatenate([p.key, k], 1))
  np.testing.assert_array_equal(v2, np.concatenate([p.value, v], 1))
  bias = jnp.full((B, 1, 4, L), -5.0)
  extended = prefix.extend_bias(bias, 2)
  assert extended.shape == (B, 1, 4, L + 2)
  np.testing.assert_array_equal(extended[..., :2], 0.0)
  np.testing.assert_array_equal(extended[..., 2:], bias)
  mask = jnp.array([[1, 1, 0], [1, 0, 0]])
  np.testing.assert_array_equal(prefix.extend_mask(mask, 2), [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])


@pytest.fixture(scope="module")
def model_setup():
  tokens = jnp.asarray(RNG.integers(2, CONFIG.vocab_size, (B, L)))
  params = nn.unbox(jax.jit(T5(CONFIG).init)(jax.random.PRNGKey(0), tokens, tokens[:, :3]))
  encode = jax.jit(lambda p, tp: T5(CONFIG).apply(p, tokens, tp, method="encode"))
  return params, tokens, encode


def _random_site_params(peft, seed):
  shapes = spec.task_param_structs(peft, CONFIG.dims, B)
  leaves, treedef = jax.tree.flatten(shapes)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, s.shape) for k, s in zip(keys, leaves)])


def test_lora_in_model_equals_merged_query_kernel(model_setup):
  params, _, encode = model_setup
  peft = spec.PeftConfig(adapter_size=None, prefix_length=None,
                         lora=spec.LoraConfig(rank=3, alpha=3.0, projections=("query", "out")))
  tp = _random_site_params(peft, seed=1)
  with_lora = encode(params, tp)
  for i in range(B):
    merged = jax.tree.map(lambda x: x, params)
    for layer in range(CONFIG.num_encoder_layers):
      attn = merged["params"]["encoder"][f"layers_{layer}"]["attention"]
      site = spec.layer_slice(tp.encoder, layer)
      q = attn["query"]["kernel"]
      q_merged = lora.merged_kernel(q.reshape(q.shape[0], -1), site.lora["query"])[i]
      attn["query"]["kernel"] = q_merged.reshape(q.shape)
      o = attn["out"]["kernel"]
      o_merged = lora.merged_kernel(o.reshape(-1, o.shape[-1]), site.lora["out"])[i]
      attn["out"]["kernel"] = o_merged.reshape(o.shape)
    np.testing.assert_allclose(encode(merged, None)[i], with_lora[i], atol=1e-4, rtol=1e-4)
  assert float(jnp.abs(with_lora - encode(params, None)).max()) > 1e-3


def test_zero_lora_b_and_zero_adapter_up_leave_output_unchanged(model_setup):
  params, _, encode = model_setup
  plain = encode(params, None)
  peft = spec.PeftConfig(adapter_size=4, prefix_length=None,
                         lora=spec.LoraConfig(rank=3, projections=spec.PROJECTIONS))
  tp = _random_site_params(peft, seed=2)
  assert float(jnp.abs(encode(params, tp) - plain).max()) > 1e-3
  site = tp.encoder
  zeroed = dataclasses.replace(
      site, lora={k: dataclasses.replace(v, b=jnp.zeros_like(v.b)) for k, v in site.lora.items()},
      adapter=dataclasses.replace(site.adapter, up=jnp.zeros_like(site.adapter.up),
                                  up_bias=jnp.zeros_like(site.adapter.up_bias)))
  np.testing.assert_allclose(encode(params, dataclasses.replace(tp, encoder=zeroed)), plain,
                             atol=1e-6)
