"""Vectorised beam search over a cached step function, with Hugging Face's scoring semantics.

Mirrors `transformers` `GenerationMixin._beam_search` (>= 4.50): keep 2 * beams candidates per
step, move EOS-ending (or max-length) candidates among the top `beams` into a finished set
scored by `sum log p / length**length_penalty`, continue the best `beams` unfinished ones, and
stop with the same early-stopping heuristic. Difference: positions after EOS are 0 (HF fills
them with EOS when pad id is 0).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from hint_jax import types

EOS_ID = 1
PAD_ID = 0
_NEG = -1.0e9


def _gather(x_BK, index_BJ):
  """x [B, K, ...] gathered along K -> [B, J, ...]."""
  index = index_BJ.reshape(index_BJ.shape + (1,) * (x_BK.ndim - 2))
  return jnp.take_along_axis(x_BK, index, axis=1)


def _reorder_cache(cache, flat_index):
  """Self-attention caches follow their source beams; cross caches and counters stay."""
  def reorder(path, x):
    names = {getattr(p, "key", None) for p in path}
    return jnp.take(x, flat_index, axis=0) if "self_attention" in names else x
  return jax.tree_util.tree_map_with_path(reorder, cache)


def _finished_update(state, topk_lp_BK, topk_seq_BKT, hits_BK, i, beams, lp, early_stopping):
  seq_BNT, scores_BN, fin_BN, unsat_B1 = (state["seq"], state["scores"], state["finished"],
                                          state["unsat"])
  top_mask_K = jnp.arange(topk_lp_BK.shape[1]) < beams
  did_finish_BK = hits_BK & top_mask_K[None]
  cand_BK = topk_lp_BK / ((i + 1).astype(jnp.float32) ** lp)
  if early_stopping is True:
    cand_BK += jnp.all(fin_BN, axis=-1, keepdims=True) * _NEG
  cand_BK += (~unsat_B1) * _NEG
  cand_BK += (~did_finish_BK) * _NEG
  merged_scores = jnp.concatenate([scores_BN, cand_BK], axis=1)
  order_BN = jax.lax.top_k(merged_scores, beams)[1]
  return (_gather(jnp.concatenate([seq_BNT, topk_seq_BKT], axis=1), order_BN),
          _gather(merged_scores, order_BN),
          _gather(jnp.concatenate([fin_BN, did_finish_BK], axis=1), order_BN))


def _heuristic(unsat_B1, running_BN, scores_BN, fin_BN, i, max_len, lp, early_stopping):
  """HF `_check_early_stop_heuristic` after the step that produced position i."""
  if early_stopping == "never" and lp > 0.0:
    best_len = jnp.float32(max_len)
  else:
    best_len = (i + 1).astype(jnp.float32)
  best_B1 = running_BN[:, :1] / best_len**lp
  worst_BN = jnp.where(fin_BN, jnp.min(scores_BN, axis=1, keepdims=True), _NEG)
  return unsat_B1 & jnp.any(best_B1 > worst_BN, axis=-1, keepdims=True)


def beam_search(step: Callable, cache: types.PyTree, batch: int, beams: int, max_len: int,
                length_penalty: float, early_stopping: Any) -> types.Array:
  """Best finished hypothesis per example, int32 [B, max_len] (EOS then 0).

  `step(tokens [B*beams], cache) -> (logits [B*beams, V], cache)` with beams flattened
  example-major.
  """
  lp, k = float(length_penalty), 2 * beams

  def body(state):
    i = state["i"]
    prev_BN = jnp.where(i > 0, state["running_seq"][:, :, jnp.maximum(i - 1, 0)], PAD_ID)
    logits_XV, cache = step(prev_BN.reshape(-1), state["cache"])
    vocab = logits_XV.shape[-1]
    logp_BNV = jax.nn.log_softmax(logits_XV.astype(jnp.float32)).reshape(batch, beams, vocab)
    logp_BX = (logp_BNV + state["running_scores"][..., None]).reshape(batch, beams * vocab)
    topk_lp_BK, topk_idx_BK = jax.lax.top_k(logp_BX, k)
    src_BK, tok_BK = topk_idx_BK // vocab, (topk_idx_BK % vocab).astype(jnp.int32)
    topk_seq_BKT = _gather(state["running_seq"], src_BK).at[:, :, i].set(tok_BK)
    hits_BK = (tok_BK == EOS_ID) | (i + 1 >= max_len)
    running_lp_BK = topk_lp_BK + hits_BK * _NEG
    next_BN = jax.lax.top_k(running_lp_BK, beams)[1]
    flat_src = (_gather(src_BK, next_BN) + jnp.arange(batch)[:, None] * beams).reshape(-1)
    seq, scores, fin = _finished_update(state, topk_lp_BK, topk_seq_BKT, hits_BK, i, beams, lp,
                                        early_stopping)
    running_scores = _gather(running_lp_BK, next_BN)
    unsat = _heuristic(state["unsat"], running_scores, scores, fin, i, max_len, lp,
                       early_stopping)
    return {"i": i + 1, "cache": _reorder_cache(cache, flat_src),
            "running_seq": _gather(topk_seq_BKT, next_BN), "running_scores": running_scores,
            "seq": seq, "scores": scores, "finished": fin, "unsat": unsat,
            "all_hit": jnp.all(hits_BK)}

  def cond(state):
    go = (state["i"] < max_len) & jnp.any(state["unsat"]) & ~state["all_hit"]
    if early_stopping is True:
      go &= ~jnp.all(state["finished"])
    return go

  zeros_BNT = jnp.full((batch, beams, max_len), PAD_ID, jnp.int32)
  init = {"i": jnp.int32(0), "cache": cache, "running_seq": zeros_BNT,
          "running_scores": jnp.zeros((batch, beams)).at[:, 1:].set(_NEG),
          "seq": zeros_BNT, "scores": jnp.full((batch, beams), _NEG),
          "finished": jnp.zeros((batch, beams), bool), "unsat": jnp.ones((batch, 1), bool),
          "all_hit": jnp.bool_(False)}
  seq_BNT = jax.lax.while_loop(cond, body, init)["seq"]
  return _clean(seq_BNT[:, 0])


def _clean(tokens_BT):
  """Zero every position after the first EOS."""
  after_eos_BT = jnp.cumsum(tokens_BT == EOS_ID, axis=1) - (tokens_BT == EOS_ID) > 0
  return jnp.where(after_eos_BT, PAD_ID, tokens_BT)
