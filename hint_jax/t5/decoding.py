"""Static-shape, jit-compiled autoregressive decoding (greedy, sampling, beam) with the KV cache."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import types
from hint_jax.peft import spec, task_rows
from hint_jax.t5 import beam as beam_lib
from hint_jax.t5 import config as config_lib
from hint_jax.t5 import model as model_lib

EOS_ID = 1
PAD_ID = 0
METHODS = ("greedy", "sample", "beam")


def _unrolled(model: nn.Module, params: types.Params) -> tuple[nn.Module, types.Params]:
  """A `scan_layers` T5 and its params in the unrolled layout (step decoding keeps one cache
  per layer); other models unchanged."""
  cfg = model.config
  if not getattr(cfg, "scan_layers", False):
    return model, params
  return (model.clone(parent=None, config=dataclasses.replace(cfg, scan_layers=False)),
          model_lib.unscanned(params))


def init_cache(model: nn.Module, params: types.Params, encoded_BSD, encoder_mask_BS,
               task_params, max_decode_len: int) -> types.PyTree:
  """Decoding cache for [B] sequences of up to `max_decode_len` tokens.

  Runs the decoder once over a dummy [B, max_decode_len] sequence, which sizes the
  self-attention caches and stores the (prefixed) cross-attention keys/values. The cache is
  per layer (`layers_i`) also for a `scan_layers` model.
  """
  model, params = _unrolled(model, params)
  dummy_BT = jnp.zeros((encoded_BSD.shape[0], max_decode_len), jnp.int32)
  _, variables = model.apply({"params": params}, encoded_BSD, encoder_mask_BS, dummy_BT,
                             task_params, decode=True, mutable=["cache"], method="decode")
  return variables["cache"]


def make_step_fn(model: nn.Module, params: types.Params, encoded_BSD, encoder_mask_BS, task_params):
  """`step(tokens_B, cache) -> (logits_BV float32, cache)` for one decoding position."""
  model, params = _unrolled(model, params)
  def step(tokens_B, cache):
    logits_B1V, variables = model.apply(
        {"params": params, "cache": cache}, encoded_BSD, encoder_mask_BS, tokens_B[:, None],
        task_params, decode=True, mutable=["cache"], method="decode")
    return logits_B1V[:, 0].astype(jnp.float32), variables["cache"]
  return step


def filter_logits(logits_BV, temperature: float, top_k: int, top_p: float):
  """Temperature, then top-k (0 = off), then nucleus top-p (1.0 = off) filtering."""
  logits_BV = logits_BV / temperature
  if top_k > 0:
    kth_B1 = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
    logits_BV = jnp.where(logits_BV < kth_B1, -jnp.inf, logits_BV)
  if top_p < 1.0:
    sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
    cum_BV = jnp.cumsum(jax.nn.softmax(sorted_BV, axis=-1), axis=-1)
    # Keep the smallest set whose mass reaches top_p (always at least the best token).
    cutoff_index_B1 = jnp.sum(cum_BV < top_p, axis=-1, keepdims=True)
    cutoff_B1 = jnp.take_along_axis(sorted_BV, cutoff_index_B1, axis=-1)
    logits_BV = jnp.where(logits_BV < cutoff_B1, -jnp.inf, logits_BV)
  return logits_BV


def _greedy_or_sample(step, cache, batch: int, max_len: int, opts: dict, rng_sample):
  """While-loop decoding; stops when every sequence emitted EOS. Pads with 0 after EOS."""
  def cond(state):
    i, _, _, _, done_B = state
    return (i < max_len) & ~jnp.all(done_B)

  def body(state):
    i, cache, prev_B, out_BT, done_B = state
    logits_BV, cache = step(prev_B, cache)
    if opts["method"] == "greedy":
      next_B = jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    else:
      logits_BV = filter_logits(logits_BV, opts["temperature"], opts["top_k"], opts["top_p"])
      next_B = jax.random.categorical(jax.random.fold_in(rng_sample, i), logits_BV).astype(jnp.int32)
    next_B = jnp.where(done_B, PAD_ID, next_B)
    out_BT = jax.lax.dynamic_update_slice(out_BT, next_B[:, None], (0, i))
    return i + 1, cache, next_B, out_BT, done_B | (next_B == EOS_ID)

  state = (jnp.int32(0), cache, jnp.zeros((batch,), jnp.int32),
           jnp.zeros((batch, max_len), jnp.int32), jnp.zeros((batch,), bool))
  return jax.lax.while_loop(cond, body, state)[3]


def _repeat(tree, n: int):
  return jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), tree)


def _decode_impl(model, params, encoded_BSD, encoder_mask_BS, task_params, rng, *, opts):
  batch, max_len = encoded_BSD.shape[0], opts["max_decode_len"]
  beams = opts["num_beams"] if opts["method"] == "beam" else 1
  if beams > 1:
    encoded_BSD, encoder_mask_BS = _repeat(encoded_BSD, beams), _repeat(encoder_mask_BS, beams)
    task_params = None if task_params is None else task_rows.repeat_examples(task_params, beams)
  cache = init_cache(model, params, encoded_BSD, encoder_mask_BS, task_params, max_len)
  step = make_step_fn(model, params, encoded_BSD, encoder_mask_BS, task_params)
  if opts["method"] == "beam":
    return beam_lib.beam_search(step, cache, batch, beams, max_len, opts["length_penalty"],
                                opts["early_stopping"])
  return _greedy_or_sample(step, cache, batch, max_len, opts, rng)


@functools.lru_cache(maxsize=64)
def _compiled(model: nn.Module, opts_items: tuple):
  return jax.jit(functools.partial(_decode_impl, model, opts=dict(opts_items)))


def decode(model: model_lib.T5, params: types.Params, encoded: types.Array,
           encoder_mask: types.Array,
           task_params: spec.TaskParams | task_rows.DecodeParams | None = None, *,
           max_decode_len: int, method: str = "greedy", num_beams: int = 4,
           length_penalty: float = 1.0, early_stopping: Any = False, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, rng: types.PRNGKey | None = None) -> types.Array:
  """Decode [B, T] tokens (EOS then 0-padding) from an encoded batch.

  Args:
    model: a `T5` module (any module with the same `decode` method signature).
    params: its params.
    encoded: [B, S, D] encoder output (may include a fused instruction).
    encoder_mask: [B, S], 1 = valid.
    task_params: per-example generated params (leading [B, N]), their decoding layout
      (`task_rows.DecodeParams`: task rows read through an index), or None.
    max_decode_len: T, the number of generated positions.
    method: "greedy", "sample" (temperature / top_k / top_p) or "beam".
    num_beams, length_penalty, early_stopping: beam search, with Hugging Face semantics
      (score = sum log p / length**length_penalty; early_stopping False, True or "never").
    rng: sampling key (required for "sample").

  Returns:
    int32 [B, T]; for beam search the best finished hypothesis of each example.
  """
  if method not in METHODS:
    raise ValueError(f"decode method must be one of {METHODS}, got {method!r}")
  if method == "sample" and rng is None:
    raise ValueError("decode method 'sample' needs an rng")
  if method == "beam" and num_beams < 1:
    raise ValueError(f"num_beams must be >= 1, got {num_beams}")
  opts = {"method": method, "max_decode_len": int(max_decode_len), "num_beams": int(num_beams),
          "length_penalty": float(length_penalty), "early_stopping": early_stopping,
          "temperature": float(temperature), "top_k": int(top_k), "top_p": float(top_p)}
  rng = jax.random.PRNGKey(0) if rng is None else rng
  fn = _compiled(model, tuple(sorted(opts.items())))
  return fn(params, encoded, encoder_mask, task_params, rng)


def greedy_decode(config: config_lib.T5Config, params: types.Params,
                  encoder_input_tokens: types.Array, max_decode_len: int) -> types.Array:
  """Greedy decoding of a plain T5: int32 [B, max_decode_len] tokens (EOS then 0)."""
  model = model_lib.T5(config)
  tokens_BL = jnp.asarray(encoder_input_tokens, jnp.int32)
  encoded_BLD = _encode_jit(model, params, tokens_BL)
  return decode(model, params, encoded_BLD, (tokens_BL > 0).astype(jnp.int32), None,
                max_decode_len=max_decode_len, method="greedy")


@functools.partial(jax.jit, static_argnums=0)
def _encode_jit(model, params, tokens_BL):
  return model.apply({"params": params}, tokens_BL, method="encode")
