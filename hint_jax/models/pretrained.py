"""Initialise a HINT model's backbone from Hugging Face T5 weights, keeping the hypernet fresh."""
from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from hint_jax import types
from hint_jax.models import hint
from hint_jax.t5 import hf

# Fields that must agree between the configured backbone and the checkpoint (dtype and dropout
# are run settings and may differ).
_ARCH_FIELDS = ("vocab_size", "d_model", "num_heads", "head_dim", "d_ff", "num_encoder_layers",
                "num_decoder_layers", "relative_attention_num_buckets",
                "relative_attention_max_distance", "feed_forward", "tie_word_embeddings")
_ENCODER_KEYS = ("token_embedder", "encoder")  # what `T5.encode` uses


def _replace_leaves(target: types.PyTree, source: types.PyTree, where: str) -> types.PyTree:
  """`target` (boxed or plain) with every leaf value taken from `source` (plain, same tree)."""
  flat_t = traverse_util.flatten_dict(dict(target))
  flat_s = traverse_util.flatten_dict(dict(source))
  if set(flat_t) != set(flat_s):
    missing = sorted("/".join(k) for k in set(flat_t) ^ set(flat_s))[:5]
    raise ValueError(f"{where}: parameter trees differ, e.g. {missing}")
  out = {}
  for key, leaf in flat_t.items():
    value = jnp.asarray(flat_s[key], jnp.float32)
    shape = (leaf.value if isinstance(leaf, nn.Partitioned) else leaf).shape
    if value.shape != shape:
      raise ValueError(f"{where}: {'/'.join(key)} has shape {value.shape}, expected {shape}")
    out[key] = leaf.replace_boxed(value) if isinstance(leaf, nn.Partitioned) else value
  return traverse_util.unflatten_dict(out)


def with_backbone(params: types.PyTree, backbone: types.PyTree,
                  copy_instruction_encoder: bool) -> types.PyTree:
  """Params with the backbone replaced (and the separate instruction encoder copied from it).

  Args:
    params: a HintModel's params, boxed or plain.
    backbone: plain T5 params (e.g. from `t5.load_hf_t5`).
    copy_instruction_encoder: also overwrite `params["hypernet"]["instruction_encoder"]`.
  """
  out = dict(params)
  out[hint.BACKBONE] = _replace_leaves(params[hint.BACKBONE], backbone, "backbone")
  if copy_instruction_encoder:
    hyper = dict(params[hint.HYPERNET])
    source = {k: backbone[k] for k in _ENCODER_KEYS}
    hyper[hint.INSTRUCTION_ENCODER] = _replace_leaves(hyper[hint.INSTRUCTION_ENCODER], source,
                                                      "instruction_encoder")
    out[hint.HYPERNET] = hyper
  return out


def init_from_hf(model: hint.HintModel, rng_init: types.PRNGKey, batch: types.Batch,
                 path: str | os.PathLike) -> types.PyTree:
  """Boxed params: backbone (and separate instruction encoder) from a local HF T5 directory,
  hypernetwork freshly initialised. Fails if the checkpoint's architecture differs."""
  config, backbone = hf.load_hf_t5(path)
  want = {f: getattr(model.config.t5, f) for f in _ARCH_FIELDS}
  got = {f: getattr(config, f) for f in _ARCH_FIELDS}
  if want != got:
    diff = {f: (want[f], got[f]) for f in _ARCH_FIELDS if want[f] != got[f]}
    raise ValueError(f"{path}: checkpoint differs from the configured T5 (configured, found): "
                     f"{diff}")
  # Abstract (shape-only) params give the tree and axis metadata; only the hypernetwork's
  # generator is actually initialised (a pretrained backbone is never initialised first).
  abstract = jax.eval_shape(model.init, rng_init, batch)
  params = {hint.BACKBONE: abstract[hint.BACKBONE]}
  hyper = dict(abstract.get(hint.HYPERNET, {}))
  hyper.update(jax.jit(model.init_generator)(rng_init))
  if hyper:
    params[hint.HYPERNET] = hyper
  separate = hint.INSTRUCTION_ENCODER in hyper
  return with_backbone(params, backbone, copy_instruction_encoder=separate)
