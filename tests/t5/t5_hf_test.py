"""Hugging Face parity and interop: logits, relative buckets, import/export, error messages."""
import json

import numpy as np
import pytest
import t5_tiny
import torch
import transformers
from safetensors.numpy import load_file, save_file

from hint_jax.layers import embed
from hint_jax.t5 import hf as hf_lib
from hint_jax.t5 import load_hf_t5, save_hf_t5


@pytest.fixture(scope="module", params=["gated-gelu", "relu"])
def saved(request, tmp_path_factory):
  """(HF model, its directory) for T5.1.1 (untied, 3 decoder layers) and original T5."""
  config = t5_tiny.hf_config(request.param, num_decoder_layers=3)
  model = t5_tiny.hf_model(config)
  path = tmp_path_factory.mktemp(request.param)
  model.save_pretrained(path)
  return model, path


def test_logits_match_hf_on_padded_batch(saved):
  model, path = saved
  config, params = load_hf_t5(path)
  assert config.tie_word_embeddings == (config.feed_forward == "relu")
  rng = np.random.default_rng(0)
  enc = t5_tiny.padded_tokens(rng, 4, 23)
  dec = rng.integers(2, t5_tiny.VOCAB, (4, 29))
  dec[:, 0] = 0
  ours = np.asarray(t5_tiny.jit_apply(config)({"params": params}, enc, dec))
  ref = t5_tiny.hf_logits(model, enc, dec)
  assert ours.dtype == np.float32
  assert np.abs(ours - ref).max() < 1e-4


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("buckets,distance", [(32, 128), (8, 20)])
def test_relative_position_buckets_match_hf(bidirectional, buckets, distance):
  rel = np.arange(-400, 401)
  ours = embed.relative_position_bucket(rel, bidirectional, buckets, distance)
  ref = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
      torch.tensor(rel), bidirectional=bidirectional, num_buckets=buckets,
      max_distance=distance).numpy()
  np.testing.assert_array_equal(ours, ref)


def test_import_export_import_is_bitwise_equal(saved, tmp_path):
  model, path = saved
  config, params = load_hf_t5(path)
  save_hf_t5(config, params, tmp_path)
  config2, params2 = load_hf_t5(tmp_path)
  assert config2 == config
  flat1, flat2 = hf_lib.traverse_util.flatten_dict(params), hf_lib.traverse_util.flatten_dict(params2)
  assert flat1.keys() == flat2.keys()
  for key in flat1:
    np.testing.assert_array_equal(flat1[key], flat2[key], err_msg=str(key))
  # transformers reads the export and computes the same function.
  reloaded = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
  rng = np.random.default_rng(1)
  enc, dec = t5_tiny.padded_tokens(rng, 2, 7), rng.integers(0, t5_tiny.VOCAB, (2, 5))
  np.testing.assert_allclose(t5_tiny.hf_logits(reloaded, enc, dec),
                             t5_tiny.hf_logits(model, enc, dec), atol=1e-5)


def test_sharded_safetensors_and_pytorch_bin(saved, tmp_path):
  _model, path = saved
  _, params = load_hf_t5(path)
  weights = load_file(str(path / "model.safetensors"))
  names = sorted(weights)
  (tmp_path / "st").mkdir()
  (tmp_path / "st" / "config.json").write_text((path / "config.json").read_text())
  half = len(names) // 2
  for i, part in enumerate((names[:half], names[half:])):
    save_file({n: weights[n] for n in part}, str(tmp_path / "st" / f"model-{i}.safetensors"))
  index = {"weight_map": {n: f"model-{int(j >= half)}.safetensors" for j, n in enumerate(names)}}
  (tmp_path / "st" / "model.safetensors.index.json").write_text(json.dumps(index))
  (tmp_path / "pt").mkdir()
  (tmp_path / "pt" / "config.json").write_text((path / "config.json").read_text())
  torch.save({n: torch.tensor(w) for n, w in weights.items()}, tmp_path / "pt" / "pytorch_model.bin")
  for directory in (tmp_path / "st", tmp_path / "pt"):
    _, loaded = load_hf_t5(directory)
    flat = hf_lib.traverse_util.flatten_dict(loaded)
    for key, value in hf_lib.traverse_util.flatten_dict(params).items():
      np.testing.assert_array_equal(flat[key], value)


def _copy_config(src, dst, **changes):
  dst.mkdir(exist_ok=True)
  raw = json.loads((src / "config.json").read_text())
  (dst / "config.json").write_text(json.dumps({**raw, **changes}))


def test_error_messages(saved, tmp_path):
  _, path = saved
  with pytest.raises(FileNotFoundError, match="config.json"):
    load_hf_t5(tmp_path / "missing")
  _copy_config(path, tmp_path / "noweights")
  with pytest.raises(FileNotFoundError, match="no weights found"):
    load_hf_t5(tmp_path / "noweights")
  _copy_config(path, tmp_path / "arch", architectures=["BartForConditionalGeneration"],
               model_type="bart")
  (tmp_path / "arch" / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
  with pytest.raises(ValueError, match="unsupported architecture"):
    load_hf_t5(tmp_path / "arch")
  _copy_config(path, tmp_path / "shape", d_ff=16)
  (tmp_path / "shape" / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
  with pytest.raises(ValueError, match=r"encoder\.block\.0\.layer\.1\.DenseReluDense\.wi.*shape"):
    load_hf_t5(tmp_path / "shape")
  _copy_config(path, tmp_path / "ff", feed_forward_proj="gated-silu")
  (tmp_path / "ff" / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
  with pytest.raises(ValueError, match="feed_forward_proj"):
    load_hf_t5(tmp_path / "ff")
