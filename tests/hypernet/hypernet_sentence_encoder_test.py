"""The BERT instruction encoder against transformers' BertModel; its weight loading and errors."""
import json

import jax
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from hint_jax.hypernet import sentence_encoder as se

transformers.logging.set_verbosity_error()

VOCAB = 100
# sentence-transformers/all-MiniLM-L6-v2's config.json, as published.
MINILM_CONFIG = {
    "_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
    "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
    "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
    "position_embedding_type": "absolute", "transformers_version": "4.8.2", "type_vocab_size": 2,
    "use_cache": True, "vocab_size": 30522}


def _hf_model() -> transformers.BertModel:
  """A tiny random BertModel, every tensor (LayerNorms too) random so that mix-ups show."""
  config = transformers.BertConfig(
      vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=64, max_position_embeddings=40, hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12)
  torch.manual_seed(0)
  model = transformers.BertModel(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      p.copy_(torch.randn_like(p) * (0.5 if "LayerNorm" in name else 0.2)
              + (1.0 if name.endswith("LayerNorm.weight") else 0.0))
  return model


@pytest.fixture(scope="module")
def hf_model():
  return _hf_model()


@pytest.fixture(scope="module", params=["safetensors", "pytorch_bin"])
def saved(request, hf_model, tmp_path_factory):
  """The model's directory: as `save_pretrained` writes it, or a legacy `pytorch_model.bin`
  whose names carry the `bert.` prefix of `BertFor*` checkpoints (transformers 5 no longer
  writes .bin files itself)."""
  path = tmp_path_factory.mktemp("bert")
  hf_model.save_pretrained(path)
  if request.param == "pytorch_bin":
    (path / "model.safetensors").unlink()
    torch.save({f"bert.{k}": v for k, v in hf_model.state_dict().items()},
               path / "pytorch_model.bin")
  return path


def _padded_batch():
  rng = np.random.default_rng(0)
  ids = rng.integers(1, VOCAB, (4, 17))
  mask = np.ones_like(ids)
  for row, length in enumerate((17, 9, 3, 1)):
    ids[row, length:] = 0
    mask[row, length:] = 0
  return ids, mask


def test_hidden_states_match_hf_on_padded_batch(hf_model, saved):
  cfg, params = se.load_hf_weights(saved)
  assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size) == (32, 2, 4, 64)
  ids, mask = _padded_batch()
  ours = np.asarray(jax.jit(se.BertEncoder(cfg).apply)({"params": params}, ids, mask))
  with torch.no_grad():
    ref = hf_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)
                   ).last_hidden_state.numpy()
  assert ours.shape == (4, 17, 32) and ours.dtype == np.float32
  keep = mask.astype(bool)
  assert np.abs(ours[keep] - ref[keep]).max() < 1e-5
  assert np.all(ours[~keep] == 0.0)
  assert np.abs(ref[keep]).max() > 0.5  # not a trivially small comparison


def test_params_cover_the_module_exactly(saved):
  cfg, params = se.load_hf_weights(saved)
  flat = jax.tree_util.tree_leaves_with_path(params)
  assert {tuple(k.key for k in path) for path, _ in flat} == set(se.param_shapes(cfg))
  assert all(leaf.dtype == np.float32 for _, leaf in flat)


def test_from_hf_config_reads_minilm_without_weights():
  cfg = se.BertConfig.from_hf_config(MINILM_CONFIG)
  assert cfg == se.BertConfig()  # the defaults are MiniLM's
  assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size) == (384, 6, 12, 1536)
  assert (cfg.vocab_size, cfg.max_positions, cfg.layer_norm_eps) == (30522, 512, 1e-12)
  shapes = se.param_shapes(cfg)  # traced abstractly: nothing allocated
  assert sum(int(np.prod(s)) for s in shapes.values()) == 22_565_376  # 22.7M less the pooler
  assert shapes[("layers_5", "intermediate", "kernel")] == (384, 1536)
  with pytest.raises(ValueError, match="hidden_act"):
    se.BertConfig.from_hf_config({**MINILM_CONFIG, "hidden_act": "relu"})
  with pytest.raises(ValueError, match="model_type"):
    se.BertConfig.from_hf_config({**MINILM_CONFIG, "model_type": "roberta"})


def test_error_messages_name_the_file_or_tensor(saved, tmp_path):
  weights = next(p for p in saved.iterdir() if p.name != "config.json")
  (tmp_path / "config.json").write_text((saved / "config.json").read_text())
  with pytest.raises(FileNotFoundError, match="config.json"):
    se.load_hf_weights(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match=r"no weights found .*model\.safetensors"):
    se.load_hf_weights(tmp_path)
  (tmp_path / weights.name).write_bytes(weights.read_bytes()[:200])  # truncated
  with pytest.raises(ValueError, match=rf"{weights.name}: cannot read weights") as err:
    se.load_hf_weights(tmp_path)
  assert "\n" not in str(err.value)


def test_missing_or_misshaped_tensor_is_named(hf_model, tmp_path):
  hf_model.save_pretrained(tmp_path)
  file = tmp_path / "model.safetensors"
  tensors = load_file(file)
  name = next(k for k in tensors if k.endswith("layer.1.intermediate.dense.weight"))
  save_file({k: v for k, v in tensors.items() if k != name}, file)
  with pytest.raises(ValueError, match=r"model\.safetensors: tensor encoder\.layer\.1\.intermediate\.dense\.weight is missing"):
    se.load_hf_weights(tmp_path)
  save_file({**tensors, name: tensors[name][:, :5]}, file)
  with pytest.raises(ValueError, match=r"intermediate\.dense\.weight has shape \(64, 5\), "
                                       r"expected \(64, 32\)"):
    se.load_hf_weights(tmp_path)
  raw = json.loads((tmp_path / "config.json").read_text())
  (tmp_path / "config.json").write_text(json.dumps({**raw, "hidden_act": "relu"}))
  with pytest.raises(ValueError, match=r"config\.json: unsupported hidden_act"):
    se.load_hf_weights(tmp_path)
