"""Tests for TaskParams export: safetensors dump and a HF PEFT LoRA adapter matching our logits."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.serving import export, task_params_io
from hint_jax.serving import predictor as predictor_lib
from hint_jax.t5 import hf

LORA = spec.PeftConfig(adapter_size=None, prefix_length=None,
                       lora=spec.LoraConfig(rank=3, alpha=6.0,
                                            projections=("query", "key", "value", "out")))
BUCKETS = predictor_lib.Buckets(batch_sizes=(2,), input_lengths=(16,), instruction_lengths=(16,))


def test_peft_adapter_gives_our_logits(make_model, tmp_path):
  import peft
  import torch
  import transformers
  model, params, vocab = make_model(LORA, hypernet_config.HypernetConfig(), False, seed=3)
  pred = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS)
  export.export_instruction(pred, "Answer in French.", str(tmp_path / "adapter"))
  hf.save_hf_t5(model.config.t5, params["backbone"], tmp_path / "backbone")
  base = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path / "backbone"))
  adapted = peft.PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()

  rng = np.random.default_rng(0)
  enc = rng.integers(3, model.config.t5.vocab_size, (2, 7)).astype(np.int32)
  enc[1, 5:] = 0
  dec = rng.integers(3, model.config.t5.vocab_size, (2, 4)).astype(np.int32)
  dec[:, 0] = 0
  encoding = hint.TaskEncoding(pred.adapt("Answer in French."), None, None)
  ours = jax.jit(model.apply)(params, encoding, jnp.asarray(enc), jnp.asarray(dec),
                              jnp.zeros((2,), jnp.int32))
  inputs = {"input_ids": torch.tensor(enc, dtype=torch.long),
            "attention_mask": torch.tensor(enc > 0, dtype=torch.long),
            "decoder_input_ids": torch.tensor(dec, dtype=torch.long)}
  with torch.no_grad():
    theirs = adapted(**inputs).logits.numpy()
    with adapted.disable_adapter():
      plain = adapted(**inputs).logits.numpy()
  assert np.max(np.abs(np.asarray(ours) - theirs)) < 1e-4 * max(1.0, np.abs(theirs).max())
  assert np.max(np.abs(plain - theirs)) > 1e-3  # the adapter is not a no-op


def test_adapter_config_and_names():
  dims = spec.BackboneDims(d_model=6, num_heads=2, head_dim=3, num_encoder_layers=2,
                           num_decoder_layers=1)
  tp = jax.tree.map(np.zeros, spec.task_param_shapes(LORA, dims, 1),
                    is_leaf=lambda x: isinstance(x, tuple) and all(isinstance(i, int) for i in x))
  cfg = export.adapter_config(tp, "base")
  assert cfg["r"] == 3 and cfg["lora_alpha"] == 6.0
  assert sorted(cfg["target_modules"]) == ["k", "o", "q", "v"]
  names = export.lora_state_dict(tp)
  assert len(names) == 2 * 4 * (2 + 1 + 1)
  key = "base_model.model.decoder.block.0.layer.1.EncDecAttention.o.lora_B.weight"
  assert names[key].shape == (6, 3)
  json.dumps(cfg)


def test_rejects_non_lora_and_fusion(make_model, tmp_path):
  dims = spec.BackboneDims(6, 2, 3, 1, 1)
  shapes = spec.task_param_shapes(spec.PeftConfig(adapter_size=2, prefix_length=None,
                                                  lora=LORA.lora), dims, 1)
  tp = jax.tree.map(np.zeros, shapes,
                    is_leaf=lambda x: isinstance(x, tuple) and all(isinstance(i, int) for i in x))
  with pytest.raises(ValueError, match="encoder also has \\['adapter'\\]"):
    export.save_peft_adapter(tp, str(tmp_path / "a"))
  export.save_task_params(str(tmp_path / "tp.safetensors"), tp)  # any TaskParams dumps
  loaded, _ = task_params_io.load(str(tmp_path / "tp.safetensors"))
  assert loaded.encoder.adapter.down.shape == (1, 1, 6, 2)
  model, params, vocab = make_model(LORA, hypernet_config.HypernetConfig(), True)
  pred = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS)
  with pytest.raises(ValueError, match="fusion"):
    export.export_instruction(pred, "x", str(tmp_path / "b"))


def test_ia3_is_not_a_peft_lora_adapter(tmp_path):
  dims = spec.BackboneDims(6, 2, 3, 1, 1, d_ff=5)
  peft = dataclasses.replace(LORA, ia3=spec.Ia3Config())
  tp = jax.tree.map(lambda s: np.ones(s.shape, np.float32), spec.task_param_structs(peft, dims, 1))
  with pytest.raises(ValueError, match="encoder also has \\['ia3'\\]"):
    export.save_peft_adapter(tp, str(tmp_path / "a"))
  export.save_task_params(str(tmp_path / "tp.safetensors"), tp)
  loaded, _ = task_params_io.load(str(tmp_path / "tp.safetensors"))
  jax.tree.map(np.testing.assert_array_equal, loaded, tp)
