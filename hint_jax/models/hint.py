"""`HintModel`: the HINT model (and its baselines) behind the trainer's `Model` interface.

Encode once: `encode_task(params, instructions)` runs the instruction encoder and hypernetwork
once per task and returns a `TaskEncoding`; `apply(params, encoding, inputs, targets)` and
`generate(...)` run the adapted backbone for any number of examples of those tasks. The training
forward is literally `apply(encode_task(...))`, so both paths agree exactly.

Task de-duplication: a batch may carry `task_index` [B] into a per-batch table of unique
instructions `hyper_encoder_input_tokens` [T, I] (T static); the hypernetwork then runs T times,
not B times, and generated parameters are gathered per example with `spec.take`. Without
`task_index`, T == B and row b belongs to example b. The trainer passes a grouped table
[G, R, I] (`training.batches.group_task_rows`): examples split into G equal consecutive groups
(one per data shard) and group g's `task_index` values point into its own R rows, so every
gather stays within a data shard.

Instructions: pad 0; an EOS-only instruction is valid (it still yields parameters); rows that
are all padding (unused rows of a padded task table) give finite, unused parameters. Length I
must not exceed `config.max_instruction_length` (the data side truncates and counts).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import types
from hint_jax.data import features
from hint_jax.hypernet import model as hypernet_lib
from hint_jax.hypernet import sentence_encoder
from hint_jax.models import config as config_lib
from hint_jax.models import groups, losses
from hint_jax.peft import kinds, spec, task_rows
from hint_jax.peft import prefix as prefix_lib
from hint_jax.t5 import decoding
from hint_jax.t5 import model as t5_model

BACKBONE = groups.BACKBONE
HYPERNET = groups.HYPERNET
# Key of a separate instruction encoder (T5 copy or BERT + projection) under params["hypernet"].
INSTRUCTION_ENCODER = "instruction_encoder"


class TaskEncoding(NamedTuple):
  """Everything a task contributes, computed once per instruction (what serving caches).

  Attributes:
    task_params: generated TaskParams [T, N, ...], or None without a hypernetwork.
    encoded: the encoded instruction H_I [T, I, D] (padding zeroed) for fusion, or None.
    mask: its padding mask [T, I] (True = token), or None without fusion.
    memory: H_I already projected to every decoder layer's cross-attention keys/values
      [T, N, I, H, K] (`HintModel.cache_memory`), which then replaces `encoded`; or None.
  """
  task_params: spec.TaskParams | None
  encoded: jax.Array | None
  mask: jax.Array | None
  memory: spec.PrefixKV | None = None


# What the decoder reads (`T5.decode`): generated TaskParams, their decoding layout, or None.
DecoderParams = spec.TaskParams | task_rows.DecodeParams | None


def _rngs(rng: types.PRNGKey | None) -> dict:
  return {} if rng is None else {"dropout": rng}


def _split(rng: types.PRNGKey | None, num: int) -> list:
  return [None] * num if rng is None else list(jax.random.split(rng, num))


class HintModel:
  """HINT or a baseline, chosen by `HintConfig`; implements `models.interface.Model`.

  Params: `{"backbone": T5 params, "hypernet": {...}}`; "hypernet" is absent for plain T5.
  """

  def __init__(self, config: config_lib.HintConfig):
    self.config = config
    self.t5 = t5_model.T5(config.t5)
    self.hypernet = None
    if config.hypernet is not None:
      self.hypernet = hypernet_lib.Hypernet(config.hypernet, config.peft, config.t5.dims,
                                            dtype=config.t5.compute_dtype)
    self.bert = None
    if config.bert is not None:
      self.bert = sentence_encoder.InstructionEncoder(config.bert, config.t5.d_model,
                                                      dtype=config.t5.compute_dtype)

  # ---- parameters ----------------------------------------------------------------------------

  def init(self, rng_init: types.PRNGKey, batch: types.Batch) -> types.PyTree:
    """Fresh boxed parameters; only the shapes of the batch's first example are used."""
    rng_backbone, rng_hypernet = jax.random.split(rng_init)
    params = {BACKBONE: self.init_backbone(rng_backbone, batch)}
    hyper = self.init_hypernet(rng_hypernet, batch)
    if hyper:
      params[HYPERNET] = hyper
    return params

  def init_backbone(self, rng_init: types.PRNGKey, batch: types.Batch) -> types.PyTree:
    """Fresh boxed T5 params (the "backbone" subtree)."""
    enc_1L = jnp.asarray(batch[features.ENCODER_INPUT_TOKENS])[:1]
    dec_1T = jnp.asarray(batch[features.DECODER_INPUT_TOKENS])[:1]
    return self.t5.init(rng_init, enc_1L, dec_1T)["params"]

  def init_hypernet(self, rng_init: types.PRNGKey, batch: types.Batch) -> types.PyTree:
    """Fresh boxed "hypernet" subtree ({} for a model without one): the generator params and,
    when configured, the separate instruction encoder copy."""
    rng_net, rng_encoder = jax.random.split(rng_init)
    hyper = self.init_generator(rng_net)
    if self.config.uses_instruction and self.config.instruction_encoder == "separate":
      enc_1L = jnp.asarray(batch[features.ENCODER_INPUT_TOKENS])[:1]
      hyper[INSTRUCTION_ENCODER] = self.t5.init(rng_encoder, enc_1L,
                                                method=t5_model.T5.encode)["params"]
    elif self.config.uses_instruction and self.bert is not None:
      ids_11 = jnp.ones((1, 1), jnp.int32)
      hyper[INSTRUCTION_ENCODER] = self.bert.init(rng_encoder, ids_11, ids_11 > 0)["params"]
    return hyper

  def init_generator(self, rng_init: types.PRNGKey) -> dict:
    """Fresh boxed params of the `Hypernet` module (pooling, tables, generator MLPs) or {}."""
    if self.hypernet is None:
      return {}
    encoded_1ID = jnp.zeros((1, 1, self.config.t5.d_model), jnp.float32)
    return dict(self.hypernet.init(rng_init, encoded_1ID, jnp.ones((1, 1), bool))["params"])

  def param_labels(self, params: types.PyTree) -> types.PyTree:
    """'backbone' or 'hypernet' for every leaf (the top-level owner)."""
    return groups.owner_labels(params)

  # ---- encode once ---------------------------------------------------------------------------

  def encode_instructions(self, params: types.PyTree, instruction_tokens_TI: jax.Array,
                          rng_dropout: types.PRNGKey | None = None
                          ) -> tuple[jax.Array, jax.Array]:
    """H_I [T, I, D] (padding rows zeroed) and its mask [T, I] from instruction tokens."""
    if instruction_tokens_TI.shape[-1] > self.config.max_instruction_length:
      raise ValueError(f"instruction length {instruction_tokens_TI.shape[-1]} exceeds "
                       f"max_instruction_length={self.config.max_instruction_length}; truncate "
                       "(and count) in the data pipeline")
    mask_TI = instruction_tokens_TI > 0
    if self.bert is not None:  # WordPiece ids; pretrained BERT, projected to d_model
      encoded_TID = self.bert.apply({"params": params[HYPERNET][INSTRUCTION_ENCODER]},
                                    instruction_tokens_TI, mask_TI)
      return encoded_TID * mask_TI[..., None].astype(encoded_TID.dtype), mask_TI
    if self.config.instruction_encoder == "shared":
      encoder_params = params[BACKBONE]  # the backbone's encoder, no adapters or prefixes
    else:
      encoder_params = params[HYPERNET][INSTRUCTION_ENCODER]
    encoded_TID = self.t5.apply({"params": encoder_params}, instruction_tokens_TI, None,
                                rng_dropout is not None, method=t5_model.T5.encode,
                                rngs=_rngs(rng_dropout))
    return encoded_TID * mask_TI[..., None].astype(encoded_TID.dtype), mask_TI

  def encode_task(self, params: types.PyTree, instruction_tokens_TI: jax.Array | None,
                  rng_dropout: types.PRNGKey | None = None) -> TaskEncoding:
    """Runs the instruction encoder and hypernetwork once per instruction row.

    Args:
      params: full unboxed params.
      instruction_tokens_TI: [T, I] instruction table (may be None for plain T5).
      rng_dropout: dropout (backbone dropout in the encoder, generator dropout) iff given.

    Returns:
      TaskEncoding with [T, ...] leaves.
    """
    if not self.config.uses_instruction:
      return TaskEncoding(None, None, None)
    if instruction_tokens_TI is None:
      raise ValueError(f"this model needs '{features.HYPER_ENCODER_INPUT_TOKENS}' in the batch")
    rng_encoder, rng_hyper = _split(rng_dropout, 2)
    encoded_TID, mask_TI = self.encode_instructions(params, jnp.asarray(instruction_tokens_TI),
                                                    rng_encoder)
    task_params = None
    if self.hypernet is not None:
      hyper = {k: v for k, v in params[HYPERNET].items() if k != INSTRUCTION_ENCODER}
      task_params = self.hypernet.apply({"params": hyper}, encoded_TID, mask_TI,
                                        rng_hyper is not None, rngs=_rngs(rng_hyper))
    if not self.config.fusion:
      return TaskEncoding(task_params, None, None)
    return TaskEncoding(task_params, encoded_TID, mask_TI)

  def cache_memory(self, params: types.PyTree, encoding: TaskEncoding) -> TaskEncoding:
    """Projects the fused H_I to every decoder layer's cross-attention keys/values, once.

    Without this, every example re-projects the (padded) instruction in each decoder layer;
    generated modules that act on projected keys/values (LoRA, IA3) are applied here too;
    with it, that cost is paid once per task and the decoder appends the cached keys/values to
    its cross-attention (`peft.prefix.append`) with the same result as fusing H_I. Memory is
    traded for compute: [T, N, I, H, K] keys and values instead of H_I [T, I, D].

    Returns:
      `encoding` with `memory` set and `encoded` None (unchanged without fusion or when cached).
    """
    if encoding.encoded is None:
      return encoding
    cross_kv = None
    if encoding.task_params is not None:
      # The kinds acting on projected keys/values (LoRA, IA3); prefixes are not projected.
      kv = {k.name: leaf for k, leaf in kinds.items(encoding.task_params.decoder_cross)
            if k.acts_on_kv}
      if kv:
        empty = spec.SiteParams()
        cross_kv = spec.TaskParams(empty, empty, spec.SiteParams(**kv))
    # The decoder's own cache initialisation projects its memory (with those generated modules).
    cache = decoding.init_cache(self.t5, params[BACKBONE], encoding.encoded,
                                encoding.mask.astype(jnp.int32), cross_kv, max_decode_len=1)
    layers = [cache["decoder"][f"layers_{i}"]["encoder_decoder_attention"]
              for i in range(self.config.t5.num_decoder_layers)]
    # The cache is heads-major [T, H, I, K]; the memory keeps the prefix layout [T, N, I, H, K].
    memory = spec.PrefixKV(
        key=jnp.stack([c["cached_key"].transpose(0, 2, 1, 3) for c in layers], axis=1),
        value=jnp.stack([c["cached_value"].transpose(0, 2, 1, 3) for c in layers], axis=1))
    return TaskEncoding(encoding.task_params, None, encoding.mask, memory)

  @staticmethod
  def per_example(encoding: TaskEncoding, task_index_B: jax.Array | None,
                  task_groups: int = 1) -> TaskEncoding:
    """Gathers a [T, ...] TaskEncoding into per-example [B, ...] rows (identity without index).

    With `task_groups` G > 1, the T rows and B examples form G consecutive groups and each
    example's index counts within its own group (see the module docstring).
    """
    if task_index_B is None:
      return encoding
    take = lambda x: None if x is None else spec.take(x, task_index_B, task_groups)
    return TaskEncoding(take(encoding.task_params), take(encoding.encoded),
                        take(encoding.mask), take(encoding.memory))

  # ---- adapted forward -----------------------------------------------------------------------

  def encode_inputs(self, params: types.PyTree, encoding: TaskEncoding,
                    encoder_input_tokens_BL: jax.Array, task_index_B: jax.Array | None = None,
                    rng_dropout: types.PRNGKey | None = None, share_task_rows: bool = False,
                    task_groups: int = 1) -> tuple[jax.Array, jax.Array, DecoderParams]:
    """Adapted encoder output, fused with H_I when configured.

    With `share_task_rows` (and `task_index_B`), the decoder's generated adapters and prefixes,
    and the cached `memory`, stay [U, ...] task rows that the decoder reads through the index
    (`task_rows.DecodeSite`) instead of per-example copies of them.

    Returns:
      (encoded [B, I + L, D] or [B, L, D], mask [B, I + L] or [B, L] int32, what the decoder
      reads: the per-example TaskParams, or their `task_rows.DecodeParams` layout when task rows
      are shared or a cached `memory` joins the cross-attention prefix; None for neither).
    """
    decoder = None
    if share_task_rows and task_index_B is not None:
      decoder = self._task_row_sites(encoding, task_index_B)
      if encoding.memory is not None:  # now inside the shared cross-attention rows
        encoding = encoding._replace(mask=None, memory=None)
    example = self.per_example(encoding, task_index_B, task_groups)
    rows = {x.shape[0] for x in jax.tree.leaves(example)}
    if rows - {encoder_input_tokens_BL.shape[0]}:
      raise ValueError(f"task encoding has {max(rows)} task row(s) for "
                       f"{encoder_input_tokens_BL.shape[0]} examples; pass "
                       f"'{features.TASK_INDEX}' to map examples to task rows (zeros: every "
                       "example reads task row 0)")
    if example.memory is not None:
      decoder = _with_memory(example.task_params, example.memory, example.mask)
    encoded_BLD = self.t5.apply({"params": params[BACKBONE]}, encoder_input_tokens_BL,
                                example.task_params, rng_dropout is not None,
                                method=t5_model.T5.encode, rngs=_rngs(rng_dropout))
    mask_BL = (encoder_input_tokens_BL > 0).astype(jnp.int32)
    if example.encoded is not None:
      encoded_BLD = jnp.concatenate([example.encoded.astype(encoded_BLD.dtype), encoded_BLD], 1)
      mask_BL = jnp.concatenate([example.mask.astype(jnp.int32), mask_BL], axis=1)
    return encoded_BLD, mask_BL, example.task_params if decoder is None else decoder

  def _task_row_sites(self, encoding: TaskEncoding, task_index_B: jax.Array
                      ) -> task_rows.DecodeParams:
    """Decoder self- and cross-attention sites whose generated modules (and cached memory) stay
    task rows [U, ...] read through `task_index_B` where their kind says so
    (`peft.kinds.Kind.task_rows`: adapters and prefixes), and are gathered per example otherwise."""
    task_params = encoding.task_params or _empty_task_params()
    layers = self.config.t5.num_decoder_layers
    index_BN = jnp.broadcast_to(task_index_B[:, None], (task_index_B.shape[0], layers))
    index_BN = index_BN.astype(jnp.int32)
    cross, kv = task_params.decoder_cross, None
    if encoding.memory is not None:
      kv = prefix_lib.append(cross.prefix, encoding.memory, encoding.mask)
      cross = cross.replace(prefix=None)
    return task_rows.DecodeParams(
        kinds.task_row_site(task_params.decoder_self, task_index_B, index_BN),
        kinds.task_row_site(cross, task_index_B, index_BN, kv))

  def apply(self, params: types.PyTree, encoding: TaskEncoding,
            encoder_input_tokens_BL: jax.Array, decoder_input_tokens_BT: jax.Array,
            task_index_B: jax.Array | None = None,
            rng_dropout: types.PRNGKey | None = None, task_groups: int = 1) -> jax.Array:
    """Logits [B, T, V] (float32) of the backbone adapted by a (cached) TaskEncoding."""
    rng_encode, rng_decode = _split(rng_dropout, 2)
    encoded_BSD, mask_BS, decoder = self.encode_inputs(params, encoding, encoder_input_tokens_BL,
                                                       task_index_B, rng_encode,
                                                       task_groups=task_groups)
    return self.t5.apply({"params": params[BACKBONE]}, encoded_BSD, mask_BS,
                         decoder_input_tokens_BT, decoder, rng_decode is not None,
                         method=t5_model.T5.decode, rngs=_rngs(rng_decode))

  def forward(self, params: types.PyTree, batch: types.Batch,
              rng_dropout: types.PRNGKey | None = None) -> jax.Array:
    """The full training forward: `apply(encode_task(...))`; logits [B, T, V].

    The instruction table may be flat [T, I] or grouped [G, R, I] (module docstring).
    """
    rng_task, rng_apply = _split(rng_dropout, 2)
    table, groups = _flat_table(batch.get(features.HYPER_ENCODER_INPUT_TOKENS))
    encoding = self.encode_task(params, table, rng_task)
    return self.apply(params, encoding, batch[features.ENCODER_INPUT_TOKENS],
                      batch[features.DECODER_INPUT_TOKENS], batch.get(features.TASK_INDEX),
                      rng_apply, task_groups=groups)

  # ---- Model interface -----------------------------------------------------------------------

  def loss_fn(self, params: types.PyTree, batch: types.Batch,
              rng_dropout: types.PRNGKey | None) -> tuple[jax.Array, dict[str, Any]]:
    """Mean weighted cross-entropy (+ z-loss) and summed metrics, see `models.interface`."""
    logits_BTV = self.forward(params, batch, rng_dropout)
    return losses.cross_entropy(
        logits_BTV, batch[features.DECODER_TARGET_TOKENS],
        batch.get(features.DECODER_LOSS_WEIGHTS), z_loss=self.config.z_loss,
        label_smoothing=self.config.label_smoothing)

  def score_fn(self, params: types.PyTree, batch: types.Batch) -> jax.Array:
    """[B] weighted sum of target log-likelihoods (rank classification), no dropout."""
    logits_BTV = self.forward(params, batch)
    log_probs_BTV = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)
    targets_BT = batch[features.DECODER_TARGET_TOKENS]
    token_BT = jnp.take_along_axis(log_probs_BTV, targets_BT[..., None], axis=-1)[..., 0]
    return jnp.sum(token_BT * batch[features.DECODER_LOSS_WEIGHTS], axis=-1)

  def generate(self, params: types.PyTree, encoding: TaskEncoding,
               encoder_input_tokens_BL: jax.Array, task_index_B: jax.Array | None = None, *,
               max_decode_len: int, **decode_options: Any) -> jax.Array:
    """Decodes [B, T] tokens with a (cached) TaskEncoding; prefixes live in the decoding cache."""
    # Few tasks for many rows (a served batch): each step reads every task's rows once.
    rows = {x.shape[0] for x in jax.tree.leaves(encoding)}
    share = bool(rows) and 4 * max(rows) <= encoder_input_tokens_BL.shape[0]
    encoded_BSD, mask_BS, decoder = self.encode_inputs(params, encoding, encoder_input_tokens_BL,
                                                       task_index_B, share_task_rows=share)
    return decoding.decode(self.t5, params[BACKBONE], encoded_BSD, mask_BS, decoder,
                           max_decode_len=max_decode_len, **decode_options)

  def predict_batch(self, params: types.PyTree, batch: types.Batch, *, max_decode_len: int,
                    **decode_options: Any) -> jax.Array:
    """[B, T] decoded ids: `generate(encode_task(...))`. Options: method, beam size, ..."""
    encoding = self.encode_task(params, batch.get(features.HYPER_ENCODER_INPUT_TOKENS))
    return self.generate(params, encoding, batch[features.ENCODER_INPUT_TOKENS],
                         batch.get(features.TASK_INDEX), max_decode_len=max_decode_len,
                         **decode_options)


def _flat_table(table: jax.Array | None) -> tuple[jax.Array | None, int]:
  """(table [T, I], number of groups) from a flat [T, I] or grouped [G, R, I] table."""
  if table is None or table.ndim == 2:
    return table, 1
  return table.reshape((-1, table.shape[-1])), table.shape[0]


def _empty_task_params() -> spec.TaskParams:
  return spec.TaskParams(spec.SiteParams(), spec.SiteParams(), spec.SiteParams())


def _with_memory(task_params: spec.TaskParams | None, memory: spec.PrefixKV,
                 mask_BI: jax.Array) -> task_rows.DecodeParams:
  """The per-example decoder sites, cached instruction keys/values [B, N, I, H, K] appended to
  the cross-attention prefix (padded positions masked)."""
  task_params = task_params or _empty_task_params()
  cross = task_params.decoder_cross
  kv = prefix_lib.append(cross.prefix, memory, mask_BI)
  return task_rows.DecodeParams(task_rows.DecodeSite.of(task_params.decoder_self),
                                task_rows.DecodeSite(cross.replace(prefix=None), spec.SiteParams(),
                                                     kv))


def unbox(params: types.PyTree) -> types.PyTree:
  """Plain arrays from boxed (logically partitioned) params."""
  return nn.unbox(params)
