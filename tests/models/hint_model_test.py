"""HintModel: encode-once API, equivalences (plain backbone, full forward, de-dup, grouped task
rows, cached decode, remat)."""
import dataclasses

import chex
import flax.linen as nn
import hint_tiny
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax import axes
from hint_jax.data import features
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.t5 import model as t5_model
from hint_jax.training import batches
from hint_jax.training import step as step_lib

F = features
HINT = hint_tiny.HINT


@pytest.fixture(scope="module")
def hint_model():
  return hint_tiny.model_and_params(HINT)


def test_init_param_tree_axes_and_labels(hint_model):
  model, params = hint_model
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), hint_tiny.batch())
  assert jax.tree.structure(nn.unbox(boxed)) == jax.tree.structure(params)
  assert set(params) == {"backbone", "hypernet"}
  assert "instruction_encoder" not in params["hypernet"]  # the shared encoder has no copy
  is_box = lambda x: isinstance(x, nn.Partitioned)
  names = {n for box in jax.tree.leaves(boxed["hypernet"], is_leaf=is_box) for n in box.names}
  assert names <= set(axes.PARAM_AXES)  # every hypernet param has logical param axes
  labels = model.param_labels(params)
  assert jax.tree.structure(labels) == jax.tree.structure(params)
  assert set(jax.tree.leaves(labels["hypernet"])) == {"hypernet"}
  assert set(jax.tree.leaves(labels["backbone"])) == {"backbone"}
  assert set(hint_tiny.model_and_params(hint_tiny.PLAIN)[1]) == {"backbone"}


def test_task_params_shapes_equal_spec(hint_model):
  _model, params = hint_model
  b = hint_tiny.batch()
  encoding = hint_tiny.jitted(HINT, "encode_task")(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  chex.assert_trees_all_equal_shapes_and_dtypes(
      encoding.task_params, spec.task_param_structs(HINT.peft, HINT.t5.dims, 2))
  assert encoding.encoded.shape == (2, 8, HINT.t5.d_model)
  np.testing.assert_array_equal(encoding.mask, b[F.HYPER_ENCODER_INPUT_TOKENS] > 0)
  # Padding rows of H_I are zeroed.
  assert float(jnp.abs(jnp.where(encoding.mask[..., None], 0.0, encoding.encoded)).max()) == 0.0


def test_plain_config_equals_backbone_exactly():
  _, params = hint_tiny.model_and_params(hint_tiny.PLAIN)
  b = hint_tiny.batch()
  want = jax.jit(t5_model.T5(hint_tiny.T5).apply)(
      {"params": params["backbone"]}, b[F.ENCODER_INPUT_TOKENS], b[F.DECODER_INPUT_TOKENS])
  # The concatenation baseline needs no instruction table.
  b.pop(F.HYPER_ENCODER_INPUT_TOKENS)
  b.pop(F.TASK_INDEX)
  np.testing.assert_array_equal(hint_tiny.forward(hint_tiny.PLAIN, params, b), want)


def test_full_forward_equals_encode_task_then_apply(hint_model):
  _, params = hint_model
  b = hint_tiny.batch()
  full = hint_tiny.forward(HINT, params, b)
  encoding = hint_tiny.jitted(HINT, "encode_task")(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  adapted = hint_tiny.jitted(HINT, "apply")(params, encoding, b[F.ENCODER_INPUT_TOKENS],
                                            b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX])
  chex.assert_trees_all_close(full, adapted, atol=1e-6, rtol=0)


def test_deduplicated_equals_per_example(hint_model):
  _, params = hint_model
  b = hint_tiny.batch()
  # T=2 vs T=4 rows through the hypernetwork: only fp32 reassociation noise may differ (the
  # BLAS picks its algorithm per shape: 4.8e-6 seen on an H200 at highest fp32 precision,
  # ~1e-6 on CPU).
  dedup = hint_tiny.forward(HINT, params, b)
  per_example = hint_tiny.forward(HINT, params, hint_tiny.per_example(b))
  chex.assert_trees_all_close(dedup, per_example, atol=1e-5, rtol=1e-4)


def test_different_instructions_give_different_outputs_at_init(hint_model):
  _, params = hint_model
  b = hint_tiny.per_example(hint_tiny.batch())
  table = b[F.HYPER_ENCODER_INPUT_TOKENS]
  same = dict(b, **{F.HYPER_ENCODER_INPUT_TOKENS: jnp.broadcast_to(table[:1], table.shape)})
  diff = jnp.abs(hint_tiny.forward(HINT, params, b) - hint_tiny.forward(HINT, params, same))
  differs = [not np.array_equal(table[0], table[i]) for i in range(table.shape[0])]
  assert differs == [False, True, False, True]  # task index [1, 0, 1, 0]
  assert float(diff[np.logical_not(differs)].max()) < 1e-6
  assert float(diff[np.array(differs)].max(axis=(1, 2)).min()) > 1e-4


def test_eos_only_instruction_and_length_limit(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()
  eos_only = jnp.zeros_like(b[F.HYPER_ENCODER_INPUT_TOKENS]).at[:, 0].set(F.EOS_ID)
  logits = hint_tiny.forward(HINT, params, dict(b, **{F.HYPER_ENCODER_INPUT_TOKENS: eos_only}))
  chex.assert_tree_all_finite(logits)
  too_long = jnp.ones((2, HINT.max_instruction_length + 1), jnp.int32)
  with pytest.raises(ValueError, match="max_instruction_length"):
    model.encode_task(params, too_long)


def test_cached_decoding_with_prefixes_equals_full_forward(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()
  encoding = hint_tiny.jitted(HINT, "encode_task")(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  assert encoding.task_params.decoder_self.prefix is not None
  assert encoding.task_params.decoder_cross.prefix is not None
  encoded, mask, decoder = hint_tiny.jitted(HINT, "encode_inputs")(
      params, encoding, b[F.ENCODER_INPUT_TOKENS], b[F.TASK_INDEX])
  full = hint_tiny.forward(HINT, params, b)
  tokens_BT = b[F.DECODER_INPUT_TOKENS]
  backbone = {"params": params["backbone"]}

  @jax.jit
  def step(cache, token_BX):
    variables = backbone if cache is None else dict(backbone, cache=cache)
    return model.t5.apply(variables, encoded, mask, token_BX, decoder, False, True,
                          method=t5_model.T5.decode, mutable=["cache"])

  cache = step(None, tokens_BT)[1]["cache"]
  for t in range(tokens_BT.shape[1]):
    logits_B1V, variables = step(cache, tokens_BT[:, t:t + 1])
    cache = variables["cache"]
    chex.assert_trees_all_close(logits_B1V[:, 0], full[:, t], atol=1e-5, rtol=0)


def test_task_encoding_is_a_gatherable_pytree(hint_model):
  _model, params = hint_model
  b = hint_tiny.batch()
  encoding = hint_tiny.jitted(HINT, "encode_task")(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  assert isinstance(encoding, hint.TaskEncoding)
  one = hint.HintModel.per_example(encoding, jnp.array([1]))
  assert one.task_params.encoder.adapter.down.shape[0] == 1
  np.testing.assert_array_equal(one.encoded[0], encoding.encoded[1])
  assert hint.HintModel.per_example(encoding, None) is encoding


def test_table_without_task_index_must_have_one_row_per_example(hint_model):
  model, params = hint_model
  b = hint_tiny.batch()  # 2 task rows for 4 examples
  b.pop(F.TASK_INDEX)
  with pytest.raises(ValueError, match=r"2 task row\(s\) for 4 examples; pass 'task_index'"):
    jax.eval_shape(model.forward, params, b)


def test_grouped_task_rows_equal_flat_table(hint_model):
  """[G, R, I] tables (one per data shard x microbatch, `batches.group_task_rows`), read within
  each example's group, give the flat table's logits, whole and per microbatch as the train step
  splits them."""
  _, params = hint_model
  b = hint_tiny.batch(num_examples=8, num_tasks=3)
  flat = hint_tiny.forward(HINT, params, b)
  grouped = batches.group_task_rows(jax.device_get(b), shards=4, microbatches=1)
  assert grouped[F.HYPER_ENCODER_INPUT_TOKENS].shape == (4, 2, 8)
  out = hint_tiny.forward(HINT, params, {k: jnp.asarray(v) for k, v in grouped.items()})
  chex.assert_trees_all_close(out, flat, atol=1e-5, rtol=1e-4)
  grouped = batches.group_task_rows(jax.device_get(b), shards=2, microbatches=2)
  split, whole = step_lib._microbatches(  # pylint: disable=protected-access
      {k: jnp.asarray(v) for k, v in grouped.items()}, 2)
  assert not whole
  for m in range(2):
    out = hint_tiny.forward(HINT, params, {k: v[m] for k, v in split.items()})
    chex.assert_trees_all_close(out, flat[m::2], atol=1e-5, rtol=1e-4)


_REMAT_BATCH_SEED, _REMAT_RNG_SEED = 3, 7


def _loss_and_grads(params, policy: str):
  """(loss, grads) of the tiny HINT with dropout 0.1 under a rematerialisation policy."""
  b, rng = hint_tiny.batch(seed=_REMAT_BATCH_SEED), jax.random.PRNGKey(_REMAT_RNG_SEED)
  t5 = dataclasses.replace(HINT.t5, dropout_rate=0.1, remat_policy=policy)

  def loss(p):
    return hint_tiny.model(hint_tiny.variant(t5=t5)).loss_fn(p, b, rng)[0]
  return jax.jit(jax.value_and_grad(loss))(params)


@pytest.fixture(scope="module")
def no_remat_grads(hint_model):
  return _loss_and_grads(hint_model[1], "none")


@pytest.mark.parametrize("policy", ["minimal", "full"])
def test_remat_policies_give_the_same_loss_and_gradients(hint_model, no_remat_grads, policy):
  """Rematerialisation only trades memory for recomputation: loss and gradients (with dropout
  on, so the recomputed masks must match) equal the policy-"none" ones."""
  want, got = no_remat_grads, _loss_and_grads(hint_model[1], policy)
  chex.assert_trees_all_close(got, want, atol=1e-6, rtol=1e-5)
