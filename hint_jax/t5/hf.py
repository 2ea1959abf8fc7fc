"""Hugging Face `T5ForConditionalGeneration` directories <-> (T5Config, T5X-layout params)."""
from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Iterator

import numpy as np
from flax import traverse_util

from hint_jax import types
from hint_jax.t5 import config as config_lib
from hint_jax.t5 import model as model_lib

ARCHITECTURE = "T5ForConditionalGeneration"
_SAFETENSORS, _SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
_TORCH, _TORCH_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
_ATTN = {"self": ("SelfAttention", "attention"), "dec_self": ("SelfAttention", "self_attention"),
         "cross": ("EncDecAttention", "encoder_decoder_attention")}

# (HF name, our path, HF shape, to_ours, to_hf); converters act on numpy arrays.
Entry = tuple[str, tuple[str, ...], tuple[int, ...], Callable, Callable]


def _linear(hf: str, path: tuple[str, ...], in_shape: tuple[int, ...],
            out_shape: tuple[int, ...]) -> Entry:
  """torch Linear weight [out, in] <-> our kernel [*in, *out]."""
  n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
  return (hf, path + ("kernel",), (n_out, n_in),
          lambda w: w.T.reshape(in_shape + out_shape), lambda k: k.reshape(n_in, n_out).T)


def _vector(hf: str, path: tuple[str, ...], size: int) -> Entry:
  return (hf, path, (size,), lambda w: w, lambda w: w)


def _attention(cfg, hf: str, ours: tuple[str, ...]) -> list[Entry]:
  d, hk = (cfg.d_model,), (cfg.num_heads, cfg.head_dim)
  return [_linear(f"{hf}.{a}.weight", ours + (b,), d, hk)
          for a, b in (("q", "query"), ("k", "key"), ("v", "value"))
          ] + [_linear(f"{hf}.o.weight", ours + ("out",), hk, d)]


def _mlp(cfg, hf: str, ours: tuple[str, ...]) -> list[Entry]:
  d, f = (cfg.d_model,), (cfg.d_ff,)
  names = ("wi_0", "wi_1") if cfg.feed_forward == "gated-gelu" else ("wi",)
  return ([_linear(f"{hf}.{n}.weight", ours + (n,), d, f) for n in names]
          + [_linear(f"{hf}.wo.weight", ours + ("wo",), f, d)])


def _stack(cfg, stack: str) -> Iterator[Entry]:
  d = cfg.d_model
  num = cfg.num_encoder_layers if stack == "encoder" else cfg.num_decoder_layers
  kinds = [("self", "pre_attention_layer_norm")] if stack == "encoder" else [
      ("dec_self", "pre_self_attention_layer_norm"), ("cross", "pre_cross_attention_layer_norm")]
  for i in range(num):
    hf, ours = f"{stack}.block.{i}.layer", (stack, f"layers_{i}")
    for j, (kind, norm) in enumerate(kinds):
      yield from _attention(cfg, f"{hf}.{j}.{_ATTN[kind][0]}", ours + (_ATTN[kind][1],))
      yield _vector(f"{hf}.{j}.layer_norm.weight", ours + (norm, "scale"), d)
    yield from _mlp(cfg, f"{hf}.{len(kinds)}.DenseReluDense", ours + ("mlp",))
    yield _vector(f"{hf}.{len(kinds)}.layer_norm.weight", ours + ("pre_mlp_layer_norm", "scale"), d)
  attn = "SelfAttention"
  yield (f"{stack}.block.0.layer.0.{attn}.relative_attention_bias.weight",
         (stack, "relpos_bias", "rel_embedding"), (cfg.relative_attention_num_buckets,
                                                   cfg.num_heads), lambda w: w.T, lambda w: w.T)
  yield _vector(f"{stack}.final_layer_norm.weight", (stack, f"{stack}_norm", "scale"), d)


def name_map(cfg: config_lib.T5Config) -> list[Entry]:
  """Every parameter: HF name, our path, HF shape and the two converters."""
  entries = [("shared.weight", ("token_embedder", "embedding"), (cfg.vocab_size, cfg.d_model),
              lambda w: w, lambda w: w)]
  entries += list(_stack(cfg, "encoder")) + list(_stack(cfg, "decoder"))
  if not cfg.tie_word_embeddings:
    entries.append(("lm_head.weight", ("decoder", "logits_dense", "kernel"),
                    (cfg.vocab_size, cfg.d_model), lambda w: w.T, lambda k: k.T))
  return entries


def _config_from_hf(raw: dict, directory: pathlib.Path, untied: bool) -> config_lib.T5Config:
  archs = raw.get("architectures") or ([ARCHITECTURE] if raw.get("model_type") == "t5" else [])
  if ARCHITECTURE not in archs or raw.get("model_type", "t5") not in ("t5", "mt5"):
    raise ValueError(f"{directory}: unsupported architecture {archs or raw.get('model_type')!r}; "
                     f"expected {ARCHITECTURE}")
  ff = raw.get("feed_forward_proj", "relu")
  if ff not in config_lib.FEED_FORWARDS:
    raise ValueError(f"{directory}: unsupported feed_forward_proj {ff!r}; "
                     f"expected one of {config_lib.FEED_FORWARDS}")
  scale = raw.get("scale_decoder_outputs", raw.get("tie_word_embeddings", True))
  if scale and untied:
    raise ValueError(f"{directory}: an untied lm_head with scaled decoder outputs is unsupported")
  num_layers = raw.get("num_layers", 6)
  return config_lib.T5Config(
      vocab_size=raw.get("vocab_size", 32128), d_model=raw.get("d_model", 512),
      num_heads=raw.get("num_heads", 8), head_dim=raw.get("d_kv", 64),
      d_ff=raw.get("d_ff", 2048), num_encoder_layers=num_layers,
      num_decoder_layers=raw.get("num_decoder_layers") or num_layers,
      relative_attention_num_buckets=raw.get("relative_attention_num_buckets", 32),
      relative_attention_max_distance=raw.get("relative_attention_max_distance", 128),
      dropout_rate=float(raw.get("dropout_rate", 0.1)), feed_forward=ff,
      tie_word_embeddings=bool(scale),
      layer_norm_epsilon=float(raw.get("layer_norm_epsilon", 1e-6)))


def _read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  from safetensors import safe_open  # flax framework: reads bfloat16 too
  with safe_open(str(path), framework="flax") as f:
    return {k: np.asarray(f.get_tensor(k), np.float32) for k in f.keys()}  # noqa: SIM118


def _read_torch(path: pathlib.Path) -> dict[str, np.ndarray]:
  import torch  # lazily: only for legacy PyTorch checkpoints
  state = torch.load(str(path), map_location="cpu", weights_only=True)
  return {k: v.detach().to(torch.float32).numpy() for k, v in state.items()}


def read_weights(directory: pathlib.Path) -> dict[str, np.ndarray]:
  """All tensors (float32 numpy) of a HF directory: safetensors preferred, shards supported."""
  for index, single, reader in ((_SAFETENSORS_INDEX, _SAFETENSORS, _read_safetensors),
                                (_TORCH_INDEX, _TORCH, _read_torch)):
    if (directory / index).exists():
      files = sorted(set(json.loads((directory / index).read_text())["weight_map"].values()))
      weights = {}
      for name in files:
        if not (directory / name).exists():
          raise FileNotFoundError(f"{directory / name}: shard listed in {index} is missing")
        weights.update(reader(directory / name))
      return weights
    if (directory / single).exists():
      return reader(directory / single)
  raise FileNotFoundError(f"{directory}: no weights found (expected {_SAFETENSORS}, "
                          f"{_SAFETENSORS_INDEX}, {_TORCH} or {_TORCH_INDEX})")


def load_hf_t5(path) -> tuple[config_lib.T5Config, types.Params]:
  """Load a local `T5ForConditionalGeneration` directory (no network).

  Args:
    path: directory with config.json and model.safetensors / pytorch_model.bin (or sharded).

  Returns:
    (config, params): float32 numpy params in the `T5` layout. An lm_head tied to the
    embedding without output scaling (T5.1.1 as saved by transformers >= 5) is loaded untied.
  """
  directory = pathlib.Path(path)
  if not (directory / "config.json").is_file():
    raise FileNotFoundError(f"{directory}: config.json not found")
  raw = json.loads((directory / "config.json").read_text())
  weights = read_weights(directory)
  untied = "lm_head.weight" in weights and not (
      "shared.weight" in weights
      and np.array_equal(weights["lm_head.weight"], weights["shared.weight"]))
  cfg = _config_from_hf(raw, directory, untied)
  if not cfg.tie_word_embeddings and "lm_head.weight" not in weights and "shared.weight" in weights:
    weights["lm_head.weight"] = weights["shared.weight"]
  flat = {}
  for hf, ours, shape, to_ours, _ in name_map(cfg):
    if hf not in weights:
      raise ValueError(f"{directory}: parameter {hf} missing from the checkpoint")
    if weights[hf].shape != shape:
      raise ValueError(f"{directory}: parameter {hf} has shape {weights[hf].shape}, "
                       f"config expects {shape}")
    flat[ours] = np.ascontiguousarray(to_ours(weights[hf]), np.float32)
  return cfg, traverse_util.unflatten_dict(flat)


def _config_to_hf(cfg: config_lib.T5Config) -> dict:
  return {
      "architectures": [ARCHITECTURE], "model_type": "t5", "vocab_size": cfg.vocab_size,
      "d_model": cfg.d_model, "num_heads": cfg.num_heads, "d_kv": cfg.head_dim,
      "d_ff": cfg.d_ff, "num_layers": cfg.num_encoder_layers,
      "num_decoder_layers": cfg.num_decoder_layers,
      "relative_attention_num_buckets": cfg.relative_attention_num_buckets,
      "relative_attention_max_distance": cfg.relative_attention_max_distance,
      "dropout_rate": cfg.dropout_rate, "layer_norm_epsilon": cfg.layer_norm_epsilon,
      "feed_forward_proj": cfg.feed_forward, "tie_word_embeddings": cfg.tie_word_embeddings,
      "scale_decoder_outputs": cfg.tie_word_embeddings, "is_encoder_decoder": True,
      "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
  }


def save_hf_t5(config: config_lib.T5Config, params: types.Params, path) -> None:
  """Write config.json + model.safetensors loadable by `T5ForConditionalGeneration`.

  An untied lm_head (T5.1.1) is written as `lm_head.weight` with `"tie_word_embeddings": false`.
  transformers >= 5 forces `T5Config.tie_word_embeddings` to True (it reads false as "do not scale
  decoder outputs") and so logs, for this as for every T5.1.1 checkpoint, that it will NOT tie
  shared.weight to lm_head.weight because they differ; it loads them untied, which is right.
  """
  from safetensors.numpy import save_file
  directory = pathlib.Path(path)
  directory.mkdir(parents=True, exist_ok=True)
  flat = traverse_util.flatten_dict(model_lib.unscanned(dict(params)))  # either layer layout
  tensors = {}
  for hf, ours, shape, _, to_hf in name_map(config):
    if ours not in flat:
      raise ValueError(f"parameter {'/'.join(ours)} missing from params")
    value = to_hf(np.asarray(flat[ours], np.float32))
    if value.shape != shape:
      raise ValueError(f"parameter {'/'.join(ours)} has shape {value.shape[::-1]}, "
                       f"config expects the transpose of {shape}")
    tensors[hf] = np.ascontiguousarray(value)
  (directory / "config.json").write_text(json.dumps(_config_to_hf(config), indent=2))
  save_file(tensors, str(directory / _SAFETENSORS), metadata={"format": "pt"})
