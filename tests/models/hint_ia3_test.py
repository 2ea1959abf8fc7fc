"""IA3 as a generated kind inside HINT: shapes, on/off, encode once, cached memory, task rows."""
import dataclasses

import chex
import flax.linen as nn
import hint_tiny
import jax
import numpy as np
import pytest

from hint_jax.data import features
from hint_jax.peft import spec

F = features
# Every kind at once (IA3 scales the LoRA-adapted keys/values), and IA3 alone.
IA3_ALL = hint_tiny.variant(peft=dataclasses.replace(hint_tiny.PEFT_ALL, ia3=spec.Ia3Config()))
IA3_ONLY = hint_tiny.variant(peft=dataclasses.replace(hint_tiny.PEFT_NONE, ia3=spec.Ia3Config()))


@pytest.fixture(scope="module")
def setup():
  model, params = hint_tiny.model_and_params(IA3_ALL)
  b = hint_tiny.batch(num_examples=5, num_tasks=3)
  encoding = hint_tiny.jitted(IA3_ALL, "encode_task")(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  return model, params, b, encoding


def test_generated_shapes_equal_spec(setup):
  _, _, b, encoding = setup
  chex.assert_trees_all_equal_shapes_and_dtypes(
      encoding.task_params, spec.task_param_structs(IA3_ALL.peft, IA3_ALL.t5.dims, 3))
  assert encoding.task_params.decoder_cross.ia3.mlp is None
  only = jax.eval_shape(hint_tiny.model(IA3_ONLY).encode_task,
                        hint_tiny.model_and_params(IA3_ONLY)[1], b[F.HYPER_ENCODER_INPUT_TOKENS])
  assert {k for k in ("adapter", "prefix", "lora", "ia3")
          if getattr(only.task_params.encoder, k) is not None} == {"ia3"}


def test_ia3_at_identity_equals_the_model_without_ia3(setup):
  model, params, b, encoding = setup
  args = (b[F.ENCODER_INPUT_TOKENS], b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX])
  # The same generated adapters/prefixes/LoRA, with IA3 vectors of ones, or without IA3.
  ones = jax.tree.map(lambda s: s.replace(ia3=jax.tree.map(np.ones_like, s.ia3)),
                      encoding.task_params, is_leaf=lambda x: isinstance(x, spec.SiteParams))
  without = jax.tree.map(lambda s: s.replace(ia3=None), encoding.task_params,
                         is_leaf=lambda x: isinstance(x, spec.SiteParams))
  apply = jax.jit(model.apply)
  identity = apply(params, encoding._replace(task_params=ones), *args)
  np.testing.assert_array_equal(identity, apply(params, encoding._replace(task_params=without),
                                                *args))
  scaled = apply(params, encoding, *args)
  assert float(np.abs(scaled - identity).max()) > 1e-4


def test_full_forward_equals_encode_task_then_apply(setup):
  _, params, b, encoding = setup
  full = hint_tiny.forward(IA3_ALL, params, b)
  adapted = hint_tiny.jitted(IA3_ALL, "apply")(params, encoding, b[F.ENCODER_INPUT_TOKENS],
                                               b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX])
  chex.assert_trees_all_close(full, adapted, atol=1e-6, rtol=0)
  per_example = hint_tiny.forward(IA3_ALL, params, hint_tiny.per_example(b))
  chex.assert_trees_all_close(full, per_example, atol=1e-5, rtol=1e-4)


def test_cached_memory_and_task_rows_equal_per_example(setup):
  """The cached instruction memory carries the cross-attention IA3 of its keys/values, and
  decoding with [U, ...] task rows (IA3 gathered per example) gives the same logits and
  generations as per-example copies."""
  model, params, _, _ = setup
  b = hint_tiny.batch(seed=3, num_examples=8, num_tasks=2)
  encoding = model.encode_task(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  cached = jax.jit(model.cache_memory)(params, encoding)
  x, dec, index = b[F.ENCODER_INPUT_TOKENS], b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX]

  def logits(enc, share):
    encoded, mask, decoder = model.encode_inputs(params, enc, x, index, share_task_rows=share)
    return model.t5.apply({"params": params["backbone"]}, encoded, mask, dec, decoder,
                          method=model.t5.decode)

  reference = jax.jit(logits, static_argnums=1)(encoding, False)
  chex.assert_trees_all_close(jax.jit(logits, static_argnums=1)(cached, False), reference,
                              atol=1e-5, rtol=0)
  shared = model.encode_inputs(params, cached, x, index, share_task_rows=True)[2]
  assert shared.decoder_self.modules.ia3.key.shape[0] == 8
  assert shared.decoder_cross.shared_kv is not None
  chex.assert_trees_all_close(jax.jit(logits, static_argnums=1)(cached, True), reference,
                              atol=1e-5, rtol=0)
  for options in ({"method": "greedy"}, {"method": "beam", "num_beams": 2}):
    generate = jax.jit(lambda p, e, o=options: model.generate(p, e, x, index, max_decode_len=4,
                                                              **o))
    np.testing.assert_array_equal(generate(params, cached), generate(params, encoding))


def test_fresh_ia3_is_exactly_the_backbone():
  """IA3 generators start with a zero final layer (`peft.kinds.Ia3.zero_init`): a freshly
  initialised HINT with only IA3 scales by exactly 1, so its logits are bitwise the backbone's;
  the final layers still get gradients, so the vectors learn."""
  config = dataclasses.replace(IA3_ONLY, fusion=False)
  model = hint_tiny.model(config)
  b = hint_tiny.batch(num_examples=3, num_tasks=2)
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), b))
  generators = {k: v for k, v in params["hypernet"].items() if k.startswith("gen_ia3_")}
  assert set(generators) == {"gen_ia3_key", "gen_ia3_value", "gen_ia3_mlp"}
  assert all(not np.any(g["wo"]) and np.any(g["wi"]) for g in generators.values())
  logits = jax.jit(model.forward)(params, b)
  backbone = jax.jit(model.t5.apply)({"params": params["backbone"]}, b[F.ENCODER_INPUT_TOKENS],
                                     b[F.DECODER_INPUT_TOKENS])
  assert logits.dtype == backbone.dtype
  np.testing.assert_array_equal(logits, backbone)  # exact, not allclose
  grads = jax.jit(jax.grad(lambda p: model.loss_fn(p, b, None)[0]))(params)
  for name in generators:
    assert float(np.abs(grads["hypernet"][name]["wo"]).max()) > 0, name
