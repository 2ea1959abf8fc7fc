"""`HintModel.cache_memory`: the fused instruction projected once per task gives the same model."""
import chex
import hint_tiny
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.data import features
from hint_jax.models import hint
from hint_jax.peft import spec, task_rows

F = features
# HINT_ALL generates LoRA on every projection, so the cross-attention keys/values of the cached
# memory must include the generated key/value LoRA; FUSION_ONLY has no hypernetwork at all.
CONFIGS = {"hint_all": hint_tiny.HINT,
           "fusion_only": hint_tiny.variant(peft=hint_tiny.PEFT_NONE, hypernet=None)}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def setup(request):
  config = CONFIGS[request.param]
  model, params = hint_tiny.model_and_params(config)
  b = hint_tiny.batch(num_examples=5, num_tasks=3)
  encoding = hint_tiny.jitted(config, "encode_task")(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  cached = jax.jit(model.cache_memory)(params, encoding)
  return config, model, params, b, encoding, cached


def test_memory_replaces_encoded_instruction(setup):
  config, _, _, b, encoding, cached = setup
  assert cached.encoded is None and encoding.encoded is not None
  t, i = b[F.HYPER_ENCODER_INPUT_TOKENS].shape
  n, h, k = config.t5.num_decoder_layers, config.t5.num_heads, config.t5.head_dim
  assert cached.memory.key.shape == cached.memory.value.shape == (t, n, i, h, k)
  np.testing.assert_array_equal(cached.mask, encoding.mask)


def test_cached_memory_gives_the_same_logits(setup):
  config, _, params, b, encoding, cached = setup
  apply = hint_tiny.jitted(config, "apply")
  args = (b[F.ENCODER_INPUT_TOKENS], b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX])
  chex.assert_trees_all_close(apply(params, cached, *args), apply(params, encoding, *args),
                              atol=1e-5, rtol=0)


@pytest.mark.parametrize("options", [{"method": "greedy"}, {"method": "beam", "num_beams": 3}])
def test_cached_memory_gives_the_same_generation(setup, options):
  _, model, params, b, encoding, cached = setup
  generate = jax.jit(lambda p, e, x, i: model.generate(p, e, x, i, max_decode_len=5, **options))
  args = (b[F.ENCODER_INPUT_TOKENS], b[F.TASK_INDEX])
  np.testing.assert_array_equal(generate(params, cached, *args), generate(params, encoding, *args))


def test_padded_memory_stays_invisible(setup):
  """Extra zero-padding of the cached memory (as a serving task table adds) changes nothing."""
  config, _, params, b, _, cached = setup
  pad = lambda x, axis: jnp.pad(x, [(0, 0)] * axis + [(0, 4)] + [(0, 0)] * (x.ndim - axis - 1))
  padded = hint.TaskEncoding(cached.task_params, None, pad(cached.mask, 1),
                             jax.tree.map(lambda x: pad(x, 2), cached.memory))
  apply = hint_tiny.jitted(config, "apply")
  args = (b[F.ENCODER_INPUT_TOKENS], b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX])
  # Only fp32 reassociation noise of the longer softmax row (1.4e-6 seen on CPU).
  chex.assert_trees_all_close(apply(params, padded, *args), apply(params, cached, *args),
                              atol=1e-5, rtol=0)


def test_without_fusion_nothing_is_cached():
  config = hint_tiny.variant(fusion=False)
  model, params = hint_tiny.model_and_params(config)
  b = hint_tiny.batch()
  encoding = model.encode_task(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  assert model.cache_memory(params, encoding) is encoding
  assert isinstance(encoding.task_params, spec.TaskParams)


def test_shared_memory_rows_give_the_same_model(setup):
  """Many examples of few tasks: the decoder reads the [U, ...] task rows through the index
  (`task_rows.DecodeSite`) instead of per-example copies, with the same logits and generations."""
  config, model, params, _, _, _ = setup
  b = hint_tiny.batch(seed=3, num_examples=8, num_tasks=2)
  encoding = model.encode_task(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  cached = model.cache_memory(params, encoding)
  x, dec, index = b[F.ENCODER_INPUT_TOKENS], b[F.DECODER_INPUT_TOKENS], b[F.TASK_INDEX]

  def logits(enc, share):
    encoded, mask, decoder = model.encode_inputs(params, enc, x, index, share_task_rows=share)
    return model.t5.apply({"params": params["backbone"]}, encoded, mask, dec, decoder,
                          method=model.t5.decode)

  shared_site = model.encode_inputs(params, cached, x, index, share_task_rows=True)[2]
  shared = shared_site.decoder_cross
  assert shared.shared_kv.key.shape[0] == 2
  assert shared.index.shape == (8, config.t5.num_decoder_layers)
  chex.assert_trees_all_close(logits(cached, True), logits(encoding, False), atol=1e-5, rtol=0)
  for options in ({"method": "greedy"}, {"method": "beam", "num_beams": 3}):
    generate = jax.jit(lambda p, e, o=options: model.generate(p, e, x, index, max_decode_len=5,
                                                              **o))
    np.testing.assert_array_equal(generate(params, cached), generate(params, encoding))


def test_repeat_examples_keeps_shared_task_rows():
  shared = task_rows.MaskedKV(key=jnp.zeros((2, 1, 3, 1, 1)), value=jnp.zeros((2, 1, 3, 1, 1)),
                              mask=jnp.ones((2, 1, 3), bool))
  lora = {"query": spec.LowRank(jnp.arange(3.0).reshape(3, 1, 1, 1), jnp.zeros((3, 1, 1, 1)))}
  rows = spec.Bottleneck(jnp.zeros((2, 1, 4, 2)), jnp.zeros((2, 1, 2)), jnp.zeros((2, 1, 2, 4)),
                         jnp.zeros((2, 1, 4)))
  empty = spec.SiteParams()
  self_site = task_rows.DecodeSite(empty, spec.SiteParams(adapter=rows),
                                   index=jnp.array([[1], [0], [1]]))
  cross_site = task_rows.DecodeSite(spec.SiteParams(lora=lora), empty, shared,
                                    index=jnp.array([[0], [1], [1]]))
  repeated = task_rows.repeat_examples(task_rows.DecodeParams(self_site, cross_site), 2)
  np.testing.assert_array_equal(repeated.decoder_self.index[:, 0], [1, 1, 0, 0, 1, 1])
  assert repeated.decoder_self.adapter()[0].down.shape[0] == 2
  cross = repeated.decoder_cross
  np.testing.assert_array_equal(cross.modules.lora["query"].a[:, 0, 0, 0], [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(cross.index[:, 0], [0, 0, 1, 1, 1, 1])
  assert cross.shared_kv.key.shape[0] == 2
  # Without an index the keys/values are per example, and repeated with them.
  per_example = task_rows.DecodeSite(empty, empty, task_rows.masked(
      spec.PrefixKV(jnp.arange(3.0).reshape(3, 1, 1, 1, 1), jnp.zeros((3, 1, 1, 1, 1)))))
  again = task_rows.repeat_examples(task_rows.DecodeParams(per_example, per_example), 2)
  np.testing.assert_array_equal(again.decoder_cross.prefix.key[:, 0, 0, 0, 0], [0, 0, 1, 1, 2, 2])
