"""PEFT ops against numpy references, and their effect inside the T5 model."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.layers import masks
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


def test_adapter_task_rows_equal_per_example_copies():
  """Task-row weights [U, ...] read through `index` give each example its own task's adapter."""
  u, index = _normal(5, 1, 12), jnp.array([2, 0, 2, 1, 2])
  rows = spec.Bottleneck(down=_normal(3, 12, 4), down_bias=_normal(3, 4), up=_normal(3, 4, 12),
                         up_bias=_normal(3, 12))
  copies = jax.tree.map(lambda x: jnp.take(jnp.asarray(x), index, axis=0), rows)
  np.testing.assert_allclose(adapter.adapter_output(jnp.asarray(u), rows, index),
                             adapter.adapter_output(jnp.asarray(u), copies), rtol=1e-5, atol=1e-5)


def test_prefix_prepend_bias_and_mask():
  k, v = _normal(B, L, 3, 5), _normal(B, L, 3, 5)
  p = spec.PrefixKV(key=_normal(B, 2, 3, 5), value=_normal(B, 2, 3, 5))
  k2, v2 = prefix.prepend_kv(jnp.asarray(k), jnp.asarray(v), p)
  np.testing.assert_array_equal(k2, np.concatenate([p.key, k], 1))
  np.testing.assert_array_equal(v2, np.concatenate([p.value, v], 1))
  bias = jnp.full((B, 1, 4, L), -5.0)
  extended = prefix.extend_bias(bias, p)
  assert extended.shape == (B, 1, 4, L + 2)
  np.testing.assert_array_equal(extended[..., :2], 0.0)
  np.testing.assert_array_equal(extended[..., 2:], bias)
  mask = jnp.array([[1, 1, 0], [1, 0, 0]])
  np.testing.assert_array_equal(prefix.extend_mask(mask, 2), [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])


def test_append_memory_keeps_padding_invisible():
  """A generated prefix (always visible) followed by padded cached memory [B, N, I, H, K]."""
  gen = spec.PrefixKV(key=_normal(B, 2, 3, 4, 5), value=_normal(B, 2, 3, 4, 5))
  memory = spec.PrefixKV(key=_normal(B, 2, 2, 4, 5), value=_normal(B, 2, 2, 4, 5))
  mask_BI = jnp.array([[1, 1], [1, 0]] + [[0, 1]] * (B - 2))
  joined = prefix.append(gen, memory, mask_BI)
  np.testing.assert_array_equal(joined.key, np.concatenate([gen.key, memory.key], 2))
  assert joined.mask.shape == (B, 2, 5) and joined.mask[:, :, :3].all()
  np.testing.assert_array_equal(joined.mask[:, 1, 3:], mask_BI > 0)
  one_layer = spec.layer_slice(joined, 1)
  bias = jnp.full((B, 1, 4, L), -5.0)
  extended = prefix.extend_bias(bias, one_layer)
  assert extended.shape == (B, 1, 4, 5 + L)
  np.testing.assert_array_equal(extended[..., 5:], bias)
  np.testing.assert_array_equal(extended[1, 0, 0, :5], [0, 0, 0, 0, masks.NEG_INF])
  assert prefix.append(None, memory, mask_BI).key.shape == memory.key.shape


@pytest.fixture(scope="module")
def model_setup():
  tokens = jnp.asarray(RNG.integers(2, CONFIG.vocab_size, (B, L)))
  shapes = nn.unbox(jax.eval_shape(T5(CONFIG).init, jax.random.PRNGKey(0), tokens, tokens[:, :3]))
  rng = np.random.default_rng(0)  # numpy values: compiling a jitted init is slow on CPU
  params = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32),
                        shapes)
  encode = jax.jit(lambda p, tp: T5(CONFIG).apply(p, tokens, tp, method="encode"))
  return params, tokens, encode


def _random_site_params(peft, seed):
  rng = np.random.default_rng(seed)  # numpy: eager jax.random compiles per shape (slow on CPU)
  return jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape), jnp.float32),
                      spec.task_param_structs(peft, CONFIG.dims, B))


PEFT = spec.PeftConfig(adapter_size=4, prefix_length=None,
                       lora=spec.LoraConfig(rank=3, alpha=3.0, projections=("query", "out")))


def test_lora_in_model_equals_merged_query_kernel(model_setup):
  params, _, encode = model_setup
  tp = _random_site_params(PEFT, seed=1)
  # Same pytree structure as the other test (one compile); a zero up-projection makes the
  # adapter contribute exactly 0 (checked by the next test).
  adapter_off = dataclasses.replace(tp.encoder.adapter, up=jnp.zeros_like(tp.encoder.adapter.up),
                                    up_bias=jnp.zeros_like(tp.encoder.adapter.up_bias))
  tp = dataclasses.replace(tp, encoder=dataclasses.replace(tp.encoder, adapter=adapter_off))
  with_lora = encode(params, tp)

  @jax.jit
  def merge(params, i):
    """Plain params with example i's LoRA deltas merged into the query and out kernels."""
    merged = jax.tree.map(lambda x: x, params)
    for layer in range(CONFIG.num_encoder_layers):
      attn = merged["params"]["encoder"][f"layers_{layer}"]["attention"]
      site = spec.layer_slice(tp.encoder, layer)
      for name in ("query", "out"):
        kernel = attn[name]["kernel"]
        flat = kernel.reshape(-1, kernel.shape[-1]) if name == "out" else kernel.reshape(
            kernel.shape[0], -1)
        attn[name]["kernel"] = lora.merged_kernel(flat, site.lora[name])[i].reshape(kernel.shape)
    return merged

  for i in range(B):
    np.testing.assert_allclose(encode(merge(params, i), None)[i], with_lora[i], atol=1e-4,
                               rtol=1e-4)
  assert float(jnp.abs(with_lora - encode(params, None)).max()) > 1e-3


def test_zero_lora_b_and_zero_adapter_up_leave_output_unchanged(model_setup):
  params, _, encode = model_setup
  plain = encode(params, None)
  tp = _random_site_params(PEFT, seed=2)
  assert float(jnp.abs(encode(params, tp) - plain).max()) > 1e-3
  site = tp.encoder
  zeroed = dataclasses.replace(
      site, lora={k: dataclasses.replace(v, b=jnp.zeros_like(v.b)) for k, v in site.lora.items()},
      adapter=dataclasses.replace(site.adapter, up=jnp.zeros_like(site.adapter.up),
                                  up_bias=jnp.zeros_like(site.adapter.up_bias)))
  np.testing.assert_allclose(encode(params, dataclasses.replace(tp, encoder=zeroed)), plain,
                             atol=1e-6)
