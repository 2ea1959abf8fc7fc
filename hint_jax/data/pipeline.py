"""Batch pipeline: a SeqIO task or mixture name -> deterministic, resumable numpy batches.

Examples of every task in the mixture are read once through SeqIO (tokenized, EOS appended) and
kept in host memory. Training order is a pure function of `(seed, step)`: a "mixture epoch" takes
`quota[t]` examples from each task `t` (its own seeded per-epoch permutation, cycled), and the
epoch is then shuffled with a seed of its own. So starting at `start_step=k` yields exactly the
batches an uninterrupted run sees from step k, and each process of a multi-host run takes its
contiguous slice `[shard_id * B / num_shards, ...)` of every global batch of B examples.
Holding examples in memory suits SNI, P3 (T0-capped) and the synthetic suite; C4-scale
pretraining text is read up to a document limit (see tasks/pretrain.py).
"""
import dataclasses
import functools
import logging
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from hint_jax.data import converters, paths, rank_classification
from hint_jax.data import features as F

Batch = converters.Batch
_LOG = logging.getLogger(__name__)
_TOKEN_FEATURES = (F.INSTRUCTION, F.INPUTS, F.TARGETS)


@dataclasses.dataclass(frozen=True)
class Source:
  """Tokenized examples of each task of a task or mixture and their per-epoch quotas."""
  name: str
  task_names: tuple[str, ...]
  examples: tuple[tuple[dict, ...], ...]  # per task: dicts of int32 arrays and decoded strings
  quotas: tuple[int, ...]  # examples of each task per mixture epoch

  @property
  def epoch_size(self) -> int:
    return sum(self.quotas)


def registry():
  """The `seqio` module, holding the tasks and mixtures registered so far.

  The library never imports the registrations (no import upward): entry points, benchmarks and
  tests `import hint_jax_tasks` (the top-level `tasks/` folder) before reading a task by name.
  """
  import seqio  # pylint: disable=g-import-not-at-top  # TF only where data is read
  return seqio


def available_names() -> list[str]:
  """All registered task and mixture names."""
  seqio = registry()
  return sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))


def _task_rates(name: str) -> list[tuple[str, float]]:
  seqio = registry()
  if name in seqio.MixtureRegistry.names():
    mixture = seqio.get_mixture_or_task(name)
    return [(t.name, float(mixture.get_rate(t))) for t in mixture.tasks]
  if name in seqio.TaskRegistry.names():
    return [(name, 1.0)]
  names = available_names()
  hint = "" if names else " (none registered: `import hint_jax_tasks` first)"
  raise ValueError(f"unknown task or mixture {name!r}; available: {', '.join(names)}{hint}")


def _decode(value):
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray) and value.dtype == object:
    return [v.decode("utf-8") for v in value.tolist()]
  return value


def load_task(name: str, split: str) -> tuple[dict, ...]:
  """Reads one task split through SeqIO (tokenized, EOS appended), in the task's own order.

  Cached per process, keyed also on $HINT_DATA_DIR so that pointing it elsewhere re-reads.
  """
  return _load_task(name, split, str(paths.data_dir()))


def iter_task(name: str, split: str, keep_pretokenized: bool = True) -> Iterator[dict]:
  """One task split through SeqIO (tokenized, EOS appended), one example at a time, in the
  task's own order (without the `*_pretokenized` strings unless `keep_pretokenized`)."""
  task = registry().get_mixture_or_task(name)
  if split not in task.splits:
    raise ValueError(f"task {name!r} has no split {split!r}; splits: {', '.join(task.splits)}")
  dataset = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
  for ex in dataset.as_numpy_iterator():
    yield {k: (v.astype(np.int32) if k in _TOKEN_FEATURES else _decode(v)) for k, v in ex.items()
           if keep_pretokenized or not k.endswith("_pretokenized")}


@functools.lru_cache(maxsize=32)
def _load_task(name: str, split: str, data_dir: str) -> tuple[dict, ...]:
  del data_dir  # cache key only; the task's source reads the configured directory
  out = list(iter_task(name, split))
  if not out:
    raise ValueError(f"task {name!r} split {split!r} has no examples")
  return tuple(out)


def load_source(name: str, split: str) -> Source:
  """Loads a task or mixture; quotas follow the mixture rates, scaled to the total size."""
  rates = [(t, r) for t, r in _task_rates(name) if r > 0]
  examples = tuple(load_task(t, split) for t, _ in rates)
  total_rate = sum(r for _, r in rates)
  total = sum(len(e) for e in examples)
  quotas = tuple(max(1, round(total * r / total_rate)) for _, r in rates)
  if len(rates) == 1:
    quotas = (len(examples[0]),)
  return Source(name, tuple(t for t, _ in rates), examples, quotas)


def with_instruction_vocab(source: Source, vocab) -> Source:
  """`source` with every instruction re-tokenised from its text by `vocab` (+ its EOS), e.g. the
  WordPiece ids a BERT instruction encoder reads (`data.wordpiece`); each distinct text once.

  Raises:
    ValueError: an example lacks `instruction_pretokenized` (the text to re-tokenise).
  """
  key, eos = F.INSTRUCTION + "_pretokenized", getattr(vocab, "eos_id", F.EOS_ID)
  ids: dict[str, np.ndarray] = {}

  def retokenize(ex: dict) -> dict:
    if key not in ex:
      raise ValueError(f"source {source.name!r}: an example has no {key!r} text to re-tokenise "
                       "with the instruction vocabulary")
    text = ex[key]
    if text not in ids:
      ids[text] = np.asarray([*vocab.encode(text), eos], np.int32)
    return {**ex, F.INSTRUCTION: ids[text]}

  examples = tuple(tuple(retokenize(ex) for ex in exs) for exs in source.examples)
  return dataclasses.replace(source, examples=examples)


def instruction_ids(source: Source) -> list[np.ndarray]:
  """Per task, an id per example such that equal ids mean equal instruction tokens."""
  return [np.unique([e[F.INSTRUCTION].tobytes() for e in exs], return_inverse=True)[1]
          .astype(np.int64) for exs in source.examples]


def _group_chunks(idx: np.ndarray, keys: np.ndarray, group_size: int) -> np.ndarray:
  """Reorders a task's epoch indices so equal instructions are adjacent (random order within
  each instruction kept) and returns [N] chunk numbers: runs of `group_size` examples sharing
  one instruction (a run's last chunk may be shorter)."""
  sort = np.argsort(keys[idx], kind="stable")
  idx[:] = idx[sort]
  k = keys[idx]
  new_run = np.r_[True, k[1:] != k[:-1]]
  pos_in_run = np.arange(len(idx)) - np.flatnonzero(new_run)[np.cumsum(new_run) - 1]
  return np.cumsum(pos_in_run % group_size == 0) - 1


def epoch_order(source: Source, seed: int, epoch: int, group_size: int = 1,
                keys: Sequence[np.ndarray] | None = None) -> np.ndarray:
  """[E, 2] (task, example) pairs of one mixture epoch; a pure function of (seed, epoch).

  With `group_size` g > 1 the epoch is shuffled in chunks of g examples of one task sharing an
  instruction (`keys`: `instruction_ids(source)`), so a batch of B holds about B / g distinct
  instructions and HINT's hypernetwork encodes that many rows, not B. Every epoch still holds
  the same examples; only their order changes.
  """
  parts, chunks, num_chunks = [], [], 0
  for t, (exs, quota) in enumerate(zip(source.examples, source.quotas)):
    pos = np.arange(epoch * quota, (epoch + 1) * quota, dtype=np.int64)
    task_epoch, within = np.divmod(pos, len(exs))
    idx = np.empty_like(pos)
    for te in np.unique(task_epoch):
      perm = np.random.default_rng([seed, t, int(te)]).permutation(len(exs))
      sel = task_epoch == te
      idx[sel] = perm[within[sel]]
    if group_size > 1:
      chunk = _group_chunks(idx, keys[t], group_size) + num_chunks
      num_chunks = int(chunk[-1]) + 1 if len(chunk) else num_chunks
      chunks.append(chunk)
    parts.append(np.stack([np.full_like(idx, t), idx], axis=1))
  order = np.concatenate(parts)
  rng = np.random.default_rng([seed, 1 << 20, epoch])
  if group_size == 1:
    return order[rng.permutation(len(order))]
  chunk_of = np.concatenate(chunks)
  rank = rng.permutation(num_chunks)
  return order[np.argsort(rank[chunk_of], kind="stable")]


def _check_sharding(batch_size: int, shard_id: int, num_shards: int) -> int:
  if batch_size % num_shards:
    raise ValueError(f"global batch size {batch_size} is not divisible by {num_shards} shards")
  if not 0 <= shard_id < num_shards:
    raise ValueError(f"shard_id {shard_id} not in [0, {num_shards})")
  return batch_size // num_shards


class TrainIterator:
  """Endless iterator of this process's slice of each global training batch.

  Attributes:
    step: the step of the next batch.
    stats: truncation counts accumulated over the batches produced so far.
  """

  def __init__(self, source: Source, feature_lengths: Mapping[str, int], batch_size: int,
               seed: int = 0, shard_id: int = 0, num_shards: int = 1, start_step: int = 0,
               converter: str = "hint", num_task_rows: int | None = None,
               group_size: int = 1):
    self.source, self.lengths, self.batch_size = source, dict(feature_lengths), batch_size
    self.seed, self.shard_id, self.converter = seed, shard_id, converter
    self.local_batch_size = _check_sharding(batch_size, shard_id, num_shards)
    self.num_task_rows, self.group_size = num_task_rows, group_size
    if group_size < 1:
      raise ValueError(f"group_size must be >= 1, got {group_size}")
    self._keys = instruction_ids(source) if group_size > 1 else None
    self.step = start_step
    self.stats = converters.ConvertStats()
    self._epoch_cache: tuple[int, np.ndarray] | None = None

  def _order(self, epoch: int) -> np.ndarray:
    if self._epoch_cache is None or self._epoch_cache[0] != epoch:
      self._epoch_cache = (epoch, epoch_order(self.source, self.seed, epoch, self.group_size,
                                              self._keys))
    return self._epoch_cache[1]

  def examples_at(self, step: int) -> list[dict]:
    """The raw examples of this process's slice of global batch `step`."""
    start = step * self.batch_size + self.shard_id * self.local_batch_size
    out = []
    for p in range(start, start + self.local_batch_size):
      epoch, offset = divmod(p, self.source.epoch_size)
      task, idx = self._order(epoch)[offset]
      out.append(self.source.examples[task][idx])
    return out

  def __iter__(self) -> "TrainIterator":
    return self

  def __next__(self) -> Batch:
    examples = self.examples_at(self.step)
    rows = self.num_task_rows
    if self.group_size > 1 and rows is not None and rows < len(
        {e[F.INSTRUCTION].tobytes() for e in examples}):
      rows = None  # a rare batch of more distinct instructions: a full-size table (own shape)
    batch, stats = converters.convert(self.converter, examples, self.lengths, rows)
    record_stats(self, stats)
    return batch


def record_stats(iterator, stats: converters.ConvertStats) -> None:
  """Adds a batch's truncation counts to `iterator.stats` (warning on the first truncation)
  and advances `iterator.step`."""
  if sum(stats.truncated.values()) and not sum(iterator.stats.truncated.values()):
    _LOG.warning("%s: truncating over-long sequences (step %d: %s); see iterator.stats",
                 iterator.source.name, iterator.step, dict(stats.truncated))
  iterator.stats.update(stats)
  iterator.step += 1


def train_iterator(name: str, split: str, feature_lengths: Mapping[str, int], batch_size: int,
                   seed: int = 0, shard_id: int = 0, num_shards: int = 1, start_step: int = 0,
                   converter: str = "hint", num_task_rows: int | None = None,
                   group_size: int = 1, instruction_vocab=None) -> TrainIterator:
  """Deterministic, repeating, shuffled training batches of a task or mixture.

  Args:
    name: registered task or mixture name (see `available_names()`).
    split: split to read, e.g. "train".
    feature_lengths: `TASK_FEATURE_LENGTHS`: `instruction`, `inputs`, `targets` -> max length.
    batch_size: global batch size (all processes together).
    seed: data seed (independent of the model seed).
    shard_id: index of this process; num_shards: number of processes.
    start_step: first step to produce (resume).
    converter: "hint" or "concat".
    num_task_rows: rows of the HINT instruction table (default: the local batch size). With
      `group_size` > 1, a batch with more distinct instructions than this gets a full-size
      table (a second batch shape, compiled once by the trainer).
    group_size: shuffle in runs of this many examples sharing an instruction (`epoch_order`).
    instruction_vocab: tokenise instructions with this vocabulary instead of the task's
      (`with_instruction_vocab`; a BERT instruction encoder's WordPiece).

  Returns:
    A `TrainIterator` yielding dicts of numpy arrays with local batch size B / num_shards.
  """
  source = load_source(name, split)
  if instruction_vocab is not None:
    source = with_instruction_vocab(source, instruction_vocab)
  return TrainIterator(source, feature_lengths, batch_size, seed, shard_id, num_shards,
                       start_step, converter, num_task_rows, group_size)


@dataclasses.dataclass
class EvalSet:
  """All examples of an eval split in a fixed order, batched without shuffling or repetition.

  `examples` keeps every example (with its strings: `targets_pretokenized`, `task`, ...) in global
  order; `example_ids[step]` gives, for this process's rows of batch `step`, the index into
  `examples`, or -1 for a padding row (padding repeats a real example with zero loss weights).
  """
  examples: list[dict]
  batches: list[Batch]
  example_ids: list[np.ndarray]
  stats: converters.ConvertStats

  def __iter__(self) -> Iterator[Batch]:
    return iter(self.batches)

  def __len__(self) -> int:
    return len(self.batches)


def eval_set(name: str, split: str, feature_lengths: Mapping[str, int], batch_size: int,
             shard_id: int = 0, num_shards: int = 1, converter: str = "hint",
             num_task_rows: int | None = None, instruction_vocab=None) -> EvalSet:
  """Every example of `split` once, in task order, in global batches padded at the end.

  Args: as for `train_iterator` (no seed: nothing is shuffled).

  Returns:
    An `EvalSet`; iterate it for this process's batches.
  """
  source = load_source(name, split)
  if instruction_vocab is not None:
    source = with_instruction_vocab(source, instruction_vocab)
  examples = [ex for exs in source.examples for ex in exs]
  return batch_eval_examples(examples, feature_lengths, batch_size, shard_id, num_shards,
                             converter, num_task_rows)


def rank_eval_set(name: str, feature_lengths: Mapping[str, int], batch_size: int,
                  split: str = "test", shard_id: int = 0, num_shards: int = 1,
                  converter: str = "hint", num_task_rows: int | None = None) -> EvalSet:
  """Rank-classification rows: one per (example, answer choice), targets = the choice.

  Score each row by the sum of its target log-likelihoods (loss weights mask padding), then
  `rank_classification.accuracy(scores, eval_set.examples)` with scores in global row order.
  """
  seqio = registry()
  examples = list(load_task(name, split))
  if "answer_choices" not in examples[0]:
    raise ValueError(f"task {name!r} has no answer_choices; it is not a rank-classification task")
  encode = seqio.get_mixture_or_task(name).output_features[F.TARGETS].vocabulary.encode
  rows = rank_classification.expand_choices(examples, encode)
  return batch_eval_examples(rows, feature_lengths, batch_size, shard_id, num_shards,
                             converter, num_task_rows)


def batch_eval_examples(examples: list[dict], feature_lengths: Mapping[str, int],
                        batch_size: int, shard_id: int = 0, num_shards: int = 1,
                        converter: str = "hint", num_task_rows: int | None = None) -> EvalSet:
  """Batches `examples` in order; padding rows repeat the last example with zero loss weights."""
  local = _check_sharding(batch_size, shard_id, num_shards)
  stats = converters.ConvertStats()
  batches, ids = [], []
  for start in range(0, len(examples), batch_size):
    ids_B = np.arange(start + shard_id * local, start + (shard_id + 1) * local)
    ids_B = np.where(ids_B < len(examples), ids_B, -1)
    rows = [examples[i] if i >= 0 else examples[-1] for i in ids_B]
    batch, part = converters.convert(converter, rows, feature_lengths, num_task_rows)
    batch[F.DECODER_LOSS_WEIGHTS] = batch[F.DECODER_LOSS_WEIGHTS] * (ids_B >= 0)[:, None]
    stats.update(part)
    batches.append(batch)
    ids.append(ids_B.astype(np.int32))
  return EvalSet(examples, batches, ids, stats)
