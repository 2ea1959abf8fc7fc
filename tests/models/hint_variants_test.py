"""Each generated module and fusion switch on and off alone; LoRA equals merged kernels;
separate instruction encoder; backbone from Hugging Face weights with a fresh hypernetwork."""
import dataclasses

import chex
import hint_tiny
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.data import features
from hint_jax.models import baseline
from hint_jax.peft import spec

F = features
_SITE_PATHS = {"encoder": ("encoder", "attention"), "decoder_self": ("decoder", "self_attention"),
               "decoder_cross": ("decoder", "encoder_decoder_attention")}


def _forward(config, b, seed=0):
  model, params = hint_tiny.model_and_params(config, seed)
  return model, params, hint_tiny.forward(config, params, b)


def _encoding_shapes(config, params, b):
  """The TaskEncoding's structure and shapes, traced without compiling."""
  return jax.eval_shape(hint_tiny.model(config).encode_task, params,
                        b[F.HYPER_ENCODER_INPUT_TOKENS])


@pytest.fixture(scope="module")
def plain_logits():
  b = hint_tiny.batch()
  return b, _forward(hint_tiny.PLAIN, b)[2]


@pytest.mark.parametrize("name,kind", [("adapters_only", "adapter"), ("prefixes_only", "prefix"),
                                       ("lora_only", "lora")])
def test_each_module_alone(plain_logits, name, kind):
  b, plain = plain_logits
  config = dataclasses.replace(baseline.variant(hint_tiny.HINT, name), fusion=False)
  _, params, logits = _forward(config, b)
  encoding = _encoding_shapes(config, params, b)
  present = {k for k in ("adapter", "prefix", "lora")
             if getattr(encoding.task_params.encoder, k) is not None}
  assert present == {kind}
  assert encoding.encoded is None
  # Same backbone weights (same seed) as the plain model: the module alone changes the output.
  assert float(jnp.abs(logits - plain).max()) > 1e-4


def test_fusion_alone_and_hypernet_without_fusion(plain_logits):
  b, plain = plain_logits
  fusion_only = baseline.variant(hint_tiny.HINT, "fusion_only")
  model, params, logits = _forward(fusion_only, b)
  assert set(params) == {"backbone"}
  encoding = _encoding_shapes(fusion_only, params, b)
  assert encoding.task_params is None and encoding.encoded.shape == (2, 8, 12)
  encoded, mask, _ = jax.eval_shape(model.encode_inputs, params, encoding,
                                    b[F.ENCODER_INPUT_TOKENS], b[F.TASK_INDEX])
  assert encoded.shape == (4, 8 + 6, 12) and mask.shape == (4, 14)
  assert float(jnp.abs(logits - plain).max()) > 1e-4
  no_fusion = baseline.variant(hint_tiny.HINT, "no_fusion")
  _, params = hint_tiny.model_and_params(no_fusion)
  encoding = _encoding_shapes(no_fusion, params, b)
  assert encoding.encoded is None and encoding.task_params is not None


def test_concat_variant_is_plain_t5(plain_logits):
  b, plain = plain_logits
  config = baseline.variant(hint_tiny.HINT, "concat")
  assert config == dataclasses.replace(baseline.concat_config(hint_tiny.T5),
                                       max_instruction_length=config.max_instruction_length)
  assert not config.uses_instruction
  np.testing.assert_array_equal(_forward(config, b)[2], plain)
  with pytest.raises(ValueError, match="unknown variant"):
    baseline.variant(hint_tiny.HINT, "nope")


def _merge_lora(backbone, task_params):
  merged = jax.tree.map(lambda x: x, backbone)
  for site_name, (stack, block) in _SITE_PATHS.items():
    site = getattr(task_params, site_name)
    for proj, low_rank in site.lora.items():
      for i in range(low_rank.a.shape[1]):
        node = merged[stack][f"layers_{i}"][block][proj]
        delta_IO = low_rank.a[0, i] @ low_rank.b[0, i] * low_rank.scale
        node["kernel"] = node["kernel"] + delta_IO.reshape(node["kernel"].shape)
  return merged


def test_lora_applied_equals_lora_merged_into_kernels():
  config = dataclasses.replace(baseline.variant(hint_tiny.HINT, "lora_only"), fusion=False)
  b = hint_tiny.batch()
  table = b[F.HYPER_ENCODER_INPUT_TOKENS]
  b[F.HYPER_ENCODER_INPUT_TOKENS] = jnp.broadcast_to(table[:1], table.shape)  # one task
  _, params, logits = _forward(config, b)
  encoding = hint_tiny.jitted(config, "encode_task")(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  merged = _merge_lora(params["backbone"], encoding.task_params)
  want = hint_tiny.forward(hint_tiny.PLAIN, {"backbone": merged}, b)
  chex.assert_trees_all_close(logits, want, atol=1e-5, rtol=1e-5)


def test_separate_instruction_encoder():
  config = hint_tiny.variant(instruction_encoder="separate")
  b = hint_tiny.batch()
  _, params = hint_tiny.model_and_params(config)
  copy = params["hypernet"]["instruction_encoder"]
  assert set(copy) == {"token_embedder", "encoder"}
  # The instruction path reads the copy, not the backbone's encoder.
  encode = hint_tiny.jitted(config, "encode_task")
  before = encode(params, b[F.HYPER_ENCODER_INPUT_TOKENS])
  bumped = dict(params, backbone=jax.tree.map(lambda x: x * 1.5, params["backbone"]))
  chex.assert_trees_all_equal(encode(bumped, b[F.HYPER_ENCODER_INPUT_TOKENS]), before)
  bumped = dict(params, hypernet=dict(params["hypernet"], instruction_encoder=jax.tree.map(
      lambda x: x * 1.5, copy)))
  after = encode(bumped, b[F.HYPER_ENCODER_INPUT_TOKENS])
  assert float(jnp.abs(after.encoded - before.encoded).max()) > 1e-3


def test_config_validation():
  with pytest.raises(ValueError, match="hypernet is None"):
    hint_tiny.variant(hypernet=None)
  with pytest.raises(ValueError, match="at least one generated module"):
    hint_tiny.variant(peft=hint_tiny.PEFT_NONE)
  with pytest.raises(ValueError, match="instruction_encoder"):
    hint_tiny.variant(instruction_encoder="bert")
  assert not hint_tiny.PLAIN.uses_instruction
  assert spec.PeftConfig().adapter_size == 64
