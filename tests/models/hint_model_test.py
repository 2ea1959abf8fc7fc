"""HintModel: encode-once API, equivalences (plain backbone, full forward, de-dup, cached decode)."""
import chex
import hint_tiny
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.data import features
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.t5 import model as t5_model

F = features


_JITTED = {}


@pytest.fixture(scope="module")
def hint_model():
  return hint_tiny.model_and_params(hint_tiny.HINT)


def _logits(model, params, b):
  if model not in _JITTED:  # one compiled forward per model (bound methods are new each time)
    _JITTED[model] = jax.jit(model.forward)
  return _JITTED[model](params, b)


def test_param_tree_and_labels(hint_model):
  model, params = hint_model
  assert set(params) == {"backbone", "hypernet"}
  assert "instruction_encoder" not in params["hypernet"]  # shared encoder owns no copy
  labels = model.param_labels(params)
  assert jax.tree.structure(labels) == jax.tree.structure(params)
  assert set(jax.tree.leaves(labels["hypernet"])) == {"hypernet"}
  assert set(jax.tree.leaves(labels["backbone"])) == {"backbone"}
  _, plain = hint_tiny.model_and_params(hint_tiny.PLAIN)
  assert set(plain) == {"backbone"}


def test_task_params_shapes_equal_spec(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()
  encoding = jax.jit(model.encode_task)(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  cfg = hint_tiny.HINT
  chex.assert_trees_all_equal_shapes_and_dtypes(
      encoding.task_params, spec.task_param_structs(cfg.peft, cfg.t5.dims, 2))
  assert encoding.encoded.shape == (2, 8, cfg.t5.d_model)
  np.testing.assert_array_equal(encoding.mask, b[F.HYPER_ENCODER_INPUT_TOKENS] > 0)
  # Padding rows of H_I are zeroed.
  assert float(jnp.abs(jnp.where(encoding.mask[..., None], 0.0, encoding.encoded)).max()) == 0.0


def test_plain_config_equals_backbone_exactly():
  model, params = hint_tiny.model_and_params(hint_tiny.PLAIN)
  b = hint_tiny.batch()
  got = _logits(model, params, b)
  want = jax.jit(t5_model.T5(hint_tiny.T5).apply)(
      {"params": params["backbone"]}, b[F.ENCODER_INPUT_TOKENS], b[F.DECODER_INPUT_TOKENS])
  np.testing.assert_array_equal(got, want)
  b.pop(F.HYPER_ENCODER_INPUT_TOKENS)  # the concatenation baseline needs no instruction table
  b.pop(F.TASK_INDEX)
  np.testing.assert_array_equal(_logits(model, params, b), want)


def test_full_forward_equals_encode_task_then_apply(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()
  full = _logits(model, params, b)
  encoding = jax.jit(model.encode_task)(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  adapted = jax.jit(model.apply)(params, encoding, b[F.ENCODER_INPUT_TOKENS],
                                 b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX])
  chex.assert_trees_all_close(full, adapted, atol=1e-6, rtol=0)


def test_deduplicated_equals_per_example(hint_model):
  model, params = hint_model
  b = hint_tiny.batch(num_examples=5, num_tasks=3)
  # T=3 vs T=5 rows through the hypernetwork: only fp32 reassociation noise may differ.
  chex.assert_trees_all_close(_logits(model, params, b),
                              _logits(model, params, hint_tiny.per_example(b)), atol=1e-6,
                              rtol=1e-5)


def test_different_instructions_give_different_outputs(hint_model):
  model, params = hint_model
  b = hint_tiny.batch(num_tasks=None)
  same = dict(b, **{F.HYPER_ENCODER_INPUT_TOKENS: jnp.broadcast_to(
      b[F.HYPER_ENCODER_INPUT_TOKENS][:1], b[F.HYPER_ENCODER_INPUT_TOKENS].shape)})
  diff = jnp.abs(_logits(model, params, b) - _logits(model, params, same))
  assert float(diff[0].max()) < 1e-6  # row 0 kept its instruction
  assert float(diff[1:].max(axis=(1, 2)).min()) > 1e-4


def test_eos_only_instruction_and_length_limit(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()
  eos_only = jnp.zeros_like(b[F.HYPER_ENCODER_INPUT_TOKENS]).at[:, 0].set(F.EOS_ID)
  logits = _logits(model, params, dict(b, **{F.HYPER_ENCODER_INPUT_TOKENS: eos_only}))
  chex.assert_tree_all_finite(logits)
  too_long = jnp.ones((2, hint_tiny.HINT.max_instruction_length + 1), jnp.int32)
  with pytest.raises(ValueError, match="max_instruction_length"):
    model.encode_task(params, too_long)


def test_cached_decoding_with_prefixes_equals_full_forward(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()
  encoding = jax.jit(model.encode_task)(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  assert encoding.task_params.decoder_self.prefix is not None
  encoded, mask, example = jax.jit(model.encode_inputs)(
      params, encoding, b[F.ENCODER_INPUT_TOKENS], b[F.TASK_INDEX])
  full = _logits(model, params, b)
  decode = t5_model.T5.decode
  tokens_BT = b[F.DECODER_INPUT_TOKENS]
  backbone = {"params": params["backbone"]}

  @jax.jit
  def step(cache, token_BX):
    variables = backbone if cache is None else dict(backbone, cache=cache)
    return model.t5.apply(variables, encoded, mask, token_BX, example.task_params, False, True,
                          method=decode, mutable=["cache"])

  _, variables = step(None, tokens_BT)
  cache = variables["cache"]
  for t in range(tokens_BT.shape[1]):
    logits_B1V, variables = step(cache, tokens_BT[:, t:t + 1])
    cache = variables["cache"]
    chex.assert_trees_all_close(logits_B1V[:, 0], full[:, t], atol=1e-5, rtol=0)


def test_encoding_is_a_pytree_for_caching(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()
  encoding = model.encode_task(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  assert isinstance(encoding, hint.TaskEncoding)
  one = hint.HintModel.per_example(encoding, jnp.array([1]))
  assert one.task_params.encoder.adapter.down.shape[0] == 1
  assert one.encoded.shape[0] == 1
