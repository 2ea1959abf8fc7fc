"""`Predictor`: cached per-instruction TaskParams and mixed-task batched generation for serving."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hint_jax import types
from hint_jax.models import hint
from hint_jax.parallel import partitioner as partitioner_lib
from hint_jax.peft import spec
from hint_jax.serving import batching
from hint_jax.serving import cache as cache_lib

DECODE_OPTIONS = ("method", "num_beams", "length_penalty", "early_stopping", "temperature",
                  "top_k", "top_p", "seed", "max_decode_len")


@dataclasses.dataclass(frozen=True)
class Buckets:
  """Static shapes: each request batch is padded up to one of these, so jit compiles a few
  programs once instead of one per request.

  Attributes:
    batch_sizes: example rows per compiled step (a batch larger than the biggest is split).
    input_lengths: encoder input lengths L (longer inputs are truncated to the biggest).
    instruction_lengths: instruction lengths I (capped by the model's max_instruction_length).
    max_decode_len: default number of generated positions.
  """
  batch_sizes: tuple[int, ...] = (1, 8, 32)
  input_lengths: tuple[int, ...] = (32, 64, 128, 256, 512)
  instruction_lengths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
  max_decode_len: int = 64


def _signature(entry: cache_lib.Adaptation) -> tuple[Any, dict[str, tuple]]:
  """(TaskParams tree structure, {array name: (shape, dtype)}) of a cache entry."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(entry.task_params)
  named = {jax.tree_util.keystr(p): x for p, x in leaves}
  named.update({f"extra.{k}": v for k, v in entry.extra_arrays().items()})
  return treedef, {k: (tuple(x.shape), np.dtype(x.dtype).name) for k, x in named.items()}


def _check_texts(name: str, values: Any) -> list[str]:
  if isinstance(values, str) or not isinstance(values, Sequence):
    raise ValueError(  # noqa: TRY004  (the serving contract: bad input is a ValueError)
        f"{name} must be a list of strings, got {type(values).__name__}")
  for i, v in enumerate(values):
    if not isinstance(v, str):
      raise ValueError(f"{name}[{i}] must be a string, got {type(v).__name__}")  # noqa: TRY004
  return list(values)


def _pad_axis(x: jax.Array, axis: int, length: int) -> jax.Array:
  """Zero-pads `axis` of `x` to `length`."""
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, length - x.shape[axis])
  return jnp.pad(x, pad)


def _pad_rows(x: jax.Array, rows: int) -> jax.Array:
  return _pad_axis(x, 0, rows)


def _check_shapes(model: hint.HintModel, params: types.PyTree, where: str) -> None:
  """Raises a one-line ValueError when `params` do not have the shapes `model` expects."""
  from hint_jax.data import features  # pylint: disable=g-import-not-at-top
  batch = {features.ENCODER_INPUT_TOKENS: jnp.ones((1, 8), jnp.int32),
           features.DECODER_INPUT_TOKENS: jnp.ones((1, 4), jnp.int32)}
  wanted = hint.unbox(jax.eval_shape(model.init, jax.random.key(0), batch))
  shapes = lambda tree: {jax.tree_util.keystr(p): tuple(np.shape(x))
                         for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}
  got, want = shapes(params), shapes(wanted)
  diff = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
  if diff:
    raise ValueError(f"checkpoint {where} does not match its model config ({len(diff)} arrays "
                     f"differ, e.g. {diff[0]}: saved {got.get(diff[0])}, config "
                     f"{want.get(diff[0])})")


# Allowed values of the numeric decode options: (test, the range in words).
OPTION_RANGES = {
    "max_decode_len": (lambda v: v >= 1, "an integer >= 1"),
    "num_beams": (lambda v: v >= 1, "an integer >= 1"),
    "temperature": (lambda v: v > 0 and np.isfinite(v),
                    "a finite number > 0 (use method greedy for argmax)"),
    "top_k": (lambda v: v >= 0, "an integer >= 0 (0: no top-k filter)"),
    "top_p": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "length_penalty": (lambda v: np.isfinite(v), "a finite number"),
}
_INTEGER_OPTIONS = ("max_decode_len", "num_beams", "top_k")


def check_option(name: str, value: Any) -> None:
  """Raises a one-line ValueError naming the decode option and its allowed range."""
  if name not in OPTION_RANGES:
    return
  test, allowed = OPTION_RANGES[name]
  kinds = (int, np.integer) if name in _INTEGER_OPTIONS else (int, float, np.number)
  ok = isinstance(value, kinds) and not isinstance(value, bool) and bool(test(value))
  if not ok:
    raise ValueError(f"{name} must be {allowed}, got {value!r}")


_COMPILED: dict = {}


def _next_pow2(n: int) -> int:
  """The smallest power of two >= n (n >= 1): few distinct shapes, so few compilations."""
  return 1 << (n - 1).bit_length()


def _compiled(model: hint.HintModel, partitioner: partitioner_lib.Partitioner):
  """(jitted encode_task, generate, score), shared by every Predictor of an equal model.

  Keyed by the model's type and frozen config and the partitioner (mesh + rules), so a reloaded
  checkpoint reuses compilations. Traced under the partitioner's mesh and axis rules, as the
  trainer's programs are, so the model's activation constraints apply.
  """
  key = (type(model), model.config, partitioner.key())
  if key not in _COMPILED:
    def generate(params, encoding, tokens_BL, index_B, rng, opts):
      return model.generate(params, encoding, tokens_BL, index_B, rng=rng, **dict(opts))
    def score(params, encoding, tokens_BL, index_B, targets_BT):
      logits_BTV = model.apply(params, encoding, tokens_BL, batching.shift_right_jnp(targets_BT),
                               index_B)
      log_probs_BTV = jax.nn.log_softmax(logits_BTV.astype(jnp.float32), axis=-1)
      token_BT = jnp.take_along_axis(log_probs_BTV, targets_BT[..., None], axis=-1)[..., 0]
      return jnp.sum(token_BT * (targets_BT > 0), axis=-1)
    def encode(params, instruction_tokens_TI, cache_memory):
      encoding = model.encode_task(params, instruction_tokens_TI)
      return model.cache_memory(params, encoding) if cache_memory else encoding
    jit = partitioner.jit
    _COMPILED[key] = (jit(encode, static_argnames=("cache_memory",)),
                      jit(generate, static_argnames=("opts",)), jit(score))
  return _COMPILED[key]


class Predictor:
  """Adapts a HINT model to instructions once and serves batches that mix tasks.

  Each distinct instruction is encoded (instruction encoder + hypernetwork) once and cached by a
  content hash of (instruction, checkpoint); every batch is then decoded in one compiled step
  whose task table holds the batch's distinct instructions and whose index picks one row per
  example. With fusion, the cached entry holds the instruction's decoder cross-attention keys and
  values (`cache_memory`), so no example re-projects the instruction. A model without
  instruction inputs (the concatenation baseline) gets `concat_template` as its encoder input.
  """

  def __init__(self, model: hint.HintModel, params: types.PyTree, vocab, *,
               checkpoint_id: str | None = None, cache_bytes: int = 1 << 30,
               cache_dir: str | None = None, buckets: Buckets = Buckets(),
               concat_template: str | None = None, cache_memory: bool = True,
               partitioner: partitioner_lib.Partitioner | None = None,
               instruction_vocab=None):
    """Args:
      model: a `HintModel` (HINT, an ablation or the concatenation baseline).
      params: its unboxed params.
      vocab: a `hint_jax.data.vocab.Vocabulary` (encode_batch / decode).
      checkpoint_id: identity of the weights for cache keys (default: a params fingerprint).
      cache_bytes: byte budget of the in-memory TaskParams LRU.
      cache_dir: optional directory for the on-disk cache tier.
      buckets: static batch and length buckets.
      concat_template: input text for models that take no instruction input; default the
        model's own (`HintConfig.concat_template`, recorded in its checkpoint).
      cache_memory: with fusion, cache the instruction's per-layer cross-attention keys/values
        [N, I, H, K] x 2 instead of H_I [I, D] (2N·H·K/D times the bytes; no per-example
        re-projection). False keeps the smaller entries and re-projects H_I in every batch.
      partitioner: mesh + axis rules the programs are traced under (default: one device,
        `partitioner.single_device()`); params should be placed on its mesh.
      instruction_vocab: the `data.wordpiece.WordPieceVocabulary` instructions are tokenised
        with, required by (and only for) a BERT instruction encoder (`HintConfig.bert`).
    """
    if model.config.bert is not None and instruction_vocab is None:
      raise ValueError("this model encodes instructions with a BERT encoder: pass "
                       "instruction_vocab=WordPieceVocabulary(<folder with its vocab.txt>)")
    self.model, self.params, self.vocab, self.buckets = model, params, vocab, buckets
    self.instruction_vocab = instruction_vocab or vocab
    self.concat_template = concat_template or model.config.concat_template
    self.cache_memory = cache_memory
    self.checkpoint_id = checkpoint_id or cache_lib.params_fingerprint(params, model.config)
    self.source = self.checkpoint_id  # `<model dir>@<step>` when loaded by from_checkpoint
    self.cache = cache_lib.TaskParamsCache(cache_bytes, cache_dir, validate=self._validate)
    max_i = model.config.max_instruction_length
    self._instruction_buckets = tuple(sorted({min(b, max_i) for b in buckets.instruction_lengths}))
    self.partitioner = partitioner or partitioner_lib.single_device()
    self._encode_task, self._generate, self._score = _compiled(model, self.partitioner)
    self._signatures: dict[int, tuple] = {}
    self.truncated = {"instructions": 0, "inputs": 0}  # texts cut to the biggest bucket
    # Cache keys depend on everything that shapes an entry or its values: the weights (content
    # fingerprint), how text becomes tokens (vocabulary bytes, the instruction buckets, whose
    # largest is the truncation length) and what is cached (H_I or its cross-attention keys and
    # values). Predictors that differ in any of these never read each other's entries.
    vocab_path = getattr(self.instruction_vocab, "path", "")
    self._key_scope = (f"{self.checkpoint_id}|{vocab_path}#{cache_lib.file_digest(vocab_path)}|"
                       f"{self._instruction_buckets}|cache_memory={bool(cache_memory)}")

  @classmethod
  def from_checkpoint(cls, model_dir: str, *, step: int | None = None, config=None, vocab=None,
                      **kwargs) -> Predictor:
    """Loads the newest readable (or the given) step of a trainer model directory.

    A damaged newer step is skipped with one warning line (`checkpoint_io.load`). The model
    config comes from `config`, the checkpoint meta or `<model_dir>/hint_config.json`; the
    vocabulary defaults to the committed one. `checkpoint_id` defaults to the weights'
    fingerprint; `source` is `<model_dir>@<step>`.
    """
    from hint_jax.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    from hint_jax.serving import checkpoint_io  # pylint: disable=g-import-not-at-top  # orbax
    config, params, identity = checkpoint_io.load(model_dir, step, config)
    model = hint.HintModel(config)
    _check_shapes(model, params, identity)
    # The cache identity is the weights' content (hashed on the host arrays, before transfer).
    checkpoint_id = kwargs.pop("checkpoint_id", None) or cache_lib.params_fingerprint(params, config)
    params = jax.tree.map(jnp.asarray, params)
    predictor = cls(model, params, vocab or vocab_lib.get_vocabulary(),
                    checkpoint_id=checkpoint_id, **kwargs)
    predictor.source = identity
    return predictor

  @property
  def uses_instruction(self) -> bool:
    return self.model.config.uses_instruction

  # ---- adaptation ---------------------------------------------------------------------------

  def _encode(self, instruction: str) -> cache_lib.Adaptation:
    max_len = self._instruction_buckets[-1]
    tokens = self._tokenize("instructions", [instruction], max_len)
    tokens_1I = batching.pad_to_bucket(tokens, self._instruction_buckets)
    encoding = self._encode_task(self.params, jnp.asarray(tokens_1I), self.cache_memory)
    return cache_lib.Adaptation(encoding.task_params, encoding.encoded, encoding.mask,
                                encoding.memory)

  def _expected(self, length: int) -> tuple:
    """The signature of an entry for an instruction bucket `length` (traced once, no compute)."""
    if length not in self._signatures:
      tokens = jax.ShapeDtypeStruct((1, length), jnp.int32)
      encoding = self._encode_task.eval_shape(self.params, tokens,
                                              cache_memory=self.cache_memory)
      self._signatures[length] = _signature(cache_lib.Adaptation(
          encoding.task_params, encoding.encoded, encoding.mask, encoding.memory))
    return self._signatures[length]

  def _validate(self, entry: cache_lib.Adaptation) -> None:
    """Raises a one-line ValueError unless a disk entry fits this model (structure, shapes,
    dtypes), as the cache requires before serving it."""
    length = self._instruction_buckets[0] if entry.mask is None else entry.mask.shape[1]
    if length not in self._instruction_buckets:
      raise ValueError(f"instruction length {length} is not one of this predictor's buckets "
                       f"{self._instruction_buckets}")
    want_tree, want = self._expected(length)
    got_tree, got = _signature(entry)
    diff = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
    if diff:
      raise ValueError(f"{len(diff)} arrays do not fit this model, e.g. {diff[0]}: "
                       f"{got.get(diff[0])} vs expected {want.get(diff[0])}")
    if got_tree != want_tree:
      raise ValueError(f"TaskParams structure differs from this model's: {got_tree}")

  def adaptation(self, instruction: str) -> cache_lib.Adaptation:
    """Cached (TaskParams, H_I, mask) of one instruction, generated on a miss."""
    if not isinstance(instruction, str):
      raise ValueError(  # noqa: TRY004
          f"instruction must be a string, got {type(instruction).__name__}")
    if not self.uses_instruction:
      raise ValueError("this model takes no instruction input, so it has no adaptation")
    key = cache_lib.cache_key(instruction, self._key_scope)
    return self.cache.get_or_create(key, lambda: self._encode(instruction))

  def adapt(self, instruction: str) -> spec.TaskParams | None:
    """TaskParams [1, N, ...] generated from `instruction` (None for a model without them)."""
    return self.adaptation(instruction).task_params

  # ---- generation ---------------------------------------------------------------------------

  def _table(self, entries: Sequence[cache_lib.Adaptation], rows: int) -> hint.TaskEncoding:
    """Stacks distinct adaptations into a task table of `rows` rows (zero rows are unused)."""
    params = None
    if entries[0].task_params is not None:
      params = jax.tree.map(lambda *xs: _pad_rows(jnp.concatenate(xs, 0), rows),
                            *[e.task_params for e in entries])
    if entries[0].mask is None:
      return hint.TaskEncoding(params, None, None)
    length = max(e.mask.shape[1] for e in entries)
    stack = lambda xs, axis: _pad_rows(jnp.concatenate([_pad_axis(x, axis, length) for x in xs]),
                                       rows)
    mask = stack([e.mask for e in entries], 1)
    if entries[0].memory is not None:  # [1, N, I, H, K]: pad I
      memory = jax.tree.map(lambda *xs: stack(xs, 2), *[e.memory for e in entries])
      return hint.TaskEncoding(params, None, mask, memory)
    return hint.TaskEncoding(params, stack([e.hidden for e in entries], 1), mask)

  def _inputs(self, instructions: Sequence[str], inputs: Sequence[str], rows: int) -> jax.Array:
    texts = list(inputs)
    if not self.uses_instruction:
      texts = [self.concat_template.format(instruction=i, input=x)
               for i, x in zip(instructions, inputs)]
    max_len = max(self.buckets.input_lengths)
    tokens = self._tokenize("inputs", texts, max_len)
    return jnp.asarray(batching.pad_to_bucket(tokens, self.buckets.input_lengths, rows))

  def _tokenize(self, kind: str, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids cut to `max_len` (with EOS); counts the texts that were cut in `truncated`."""
    vocab = self.instruction_vocab if kind == "instructions" else self.vocab
    tokens = batching.tokenize(vocab, texts, max_len + 1)
    self.truncated[kind] += sum(len(t) > max_len for t in tokens)
    return [t if len(t) <= max_len else t[:max_len - 1] + [t[-1]] for t in tokens]

  def _features(self, instructions, inputs):
    """(task table, encoder tokens [B, L], task index [B]) padded to the batch bucket."""
    rows = batching.bucket(len(inputs), self.buckets.batch_sizes)
    tokens_BL = self._inputs(instructions, inputs, rows)
    index_B = np.zeros((rows,), np.int32)
    encoding = hint.TaskEncoding(None, None, None)
    if self.uses_instruction:
      distinct = list(dict.fromkeys(instructions))
      index_B[:len(inputs)] = [distinct.index(i) for i in instructions]
      # Task rows padded to a power of two (few compiled shapes), not to the batch: a batch of
      # few tasks then reads each task's cached memory once per decoding step.
      task_rows = min(rows, _next_pow2(len(distinct)))
      encoding = self._table([self.adaptation(i) for i in distinct], task_rows)
    return encoding, tokens_BL, jnp.asarray(index_B)

  def _batch(self, instructions, inputs, opts: tuple, rng) -> list[str]:
    encoding, tokens_BL, index_B = self._features(instructions, inputs)
    out_BT = self._generate(self.params, encoding, tokens_BL, index_B, rng, opts)
    out_BT = np.asarray(out_BT)
    return [self.vocab.decode(out_BT[i]) for i in range(len(inputs))]

  def _options(self, decode_options: dict) -> tuple[tuple, jax.Array]:
    unknown = sorted(set(decode_options) - set(DECODE_OPTIONS))
    if unknown:
      raise ValueError(f"unknown decode option(s) {unknown}; choose from {DECODE_OPTIONS}")
    opts = dict(decode_options)
    seed = int(opts.pop("seed", 0))
    opts.setdefault("max_decode_len", self.buckets.max_decode_len)
    opts.setdefault("method", "greedy")
    if opts["method"] not in ("greedy", "sample", "beam"):
      raise ValueError(f"decode method must be greedy, sample or beam, got {opts['method']!r}")
    for name, value in opts.items():
      check_option(name, value)
    return tuple(sorted(opts.items())), jax.random.key(seed)

  def generate(self, instructions: Sequence[str], inputs: Sequence[str],
               **decode_options: Any) -> list[str]:
    """Decoded text for every (instruction, input) pair; each input has its own instruction.

    Args:
      instructions: one instruction per input ("" is a valid, empty instruction).
      inputs: the inputs.
      **decode_options: method ("greedy", "sample", "beam"), max_decode_len, num_beams,
        length_penalty, early_stopping, temperature, top_k, top_p, seed.

    Returns:
      One string per input, in order.

    Raises:
      ValueError: mismatched lengths, a non-string entry, or an unknown option (one line).
    """
    instructions = _check_texts("instructions", instructions)
    inputs = _check_texts("inputs", inputs)
    if len(instructions) != len(inputs):
      raise ValueError(f"got {len(instructions)} instructions but {len(inputs)} inputs")
    opts, rng = self._options(decode_options)
    out = []
    for n, (start, stop) in enumerate(batching.chunks(len(inputs), max(self.buckets.batch_sizes))):
      out += self._batch(instructions[start:stop], inputs[start:stop], opts,
                         jax.random.fold_in(rng, n))
    return out

  def score(self, instructions: Sequence[str], inputs: Sequence[str], targets: Sequence[str],
            max_target_len: int = 64) -> np.ndarray:
    """Sum of target-token log-likelihoods per example (teacher forced; rank classification).

    Targets are cut to `max_target_len` tokens; each batch pads them only to the next power of
    two (at least 8) above its longest target, which the causal decoder makes exact.

    Raises:
      ValueError: mismatched lengths or a non-string entry (one line).
    """
    instructions = _check_texts("instructions", instructions)
    inputs = _check_texts("inputs", inputs)
    targets = _check_texts("targets", targets)
    if not len(instructions) == len(inputs) == len(targets):
      raise ValueError(f"got {len(instructions)} instructions, {len(inputs)} inputs and "
                       f"{len(targets)} targets")
    out = []
    for start, stop in batching.chunks(len(inputs), max(self.buckets.batch_sizes)):
      encoding, tokens_BL, index_B = self._features(instructions[start:stop], inputs[start:stop])
      tgt = batching.tokenize(self.vocab, targets[start:stop], max_target_len)
      length = min(max_target_len, max(8, _next_pow2(max(map(len, tgt)))))
      targets_BT = batching.pad(tgt, length, tokens_BL.shape[0])
      scores = self._score(self.params, encoding, tokens_BL, index_B, jnp.asarray(targets_BT))
      out.append(np.asarray(scores)[:stop - start])
    return np.concatenate(out) if out else np.zeros((0,), np.float32)
