"""Streaming training batches from a task cache: Grain index sampling, per-host random reads.

The example at global position p (batch `p // B`, row `p % B`) is a pure function of
`(seed, p)`, computed lazily, without any per-epoch table:

1. Mixture epochs of `E = sum(quotas)` slots, `quotas` as in `pipeline.load_source` (mixture
   rates scaled to the total example count; T0's `examples_rate` caps reach us as rates).
   Slot `p % E` of epoch `p // E` goes through Grain's `index_shuffle` (a lazy pseudo-random
   bijection, seeded per epoch) onto a task `t` (the slot's range of `quotas`) and a position
   in task t's own stream, which continues from one mixture epoch to the next.
2. Task t's stream is its records under a fresh lazy permutation per task epoch, exactly as
   `grain.MapDataset.range(n_t).shuffle(seed_t).repeat()` orders them.

A process fed by `InputShard(index, count)` reads only rows `[index * B / count, ...)` of each
global batch, by record index from the ArrayRecord files (one batched read per file and
batch). So start-up costs one manifest per task plus loading each file's record index on its
first read, and host memory is a few batches plus those indices (about 60 bytes per record in
ArrayRecord's in-memory index: the one part that grows with the dataset).
Batches are built by `converters.convert`, exactly as in `pipeline.TrainIterator`, and
prefetched in order by a Grain thread.
"""
import bisect
import collections
import dataclasses
import functools
import itertools
import os
import sys
from collections.abc import Mapping, Sequence

import grain
import numpy as np

from hint_jax.data import cache, converters, pipeline

Batch = converters.Batch
_MIX_STREAM = 1 << 20  # seed-sequence key of the mixture shuffle (tasks use 0, 1, ...)


@dataclasses.dataclass(frozen=True)
class CachedSource:
  """The cached tasks of a task or mixture, their sizes, rates and per-epoch quotas."""
  name: str
  task_names: tuple[str, ...]
  sizes: tuple[int, ...]
  rates: tuple[float, ...]
  quotas: tuple[int, ...]
  shards: tuple[tuple[str, ...], ...]  # per task: ArrayRecord read instructions

  @property
  def epoch_size(self) -> int:
    return sum(self.quotas)


def mixture_quotas(sizes: Sequence[int], rates: Sequence[float]) -> tuple[int, ...]:
  """Examples of each task per mixture epoch: rates scaled to the total size (one task: all)."""
  if len(sizes) == 1:
    return (int(sizes[0]),)
  total, total_rate = sum(sizes), sum(rates)
  return tuple(max(1, round(total * r / total_rate)) for r in rates)


def open_source(cache_dir: str | os.PathLike, name: str, split: str) -> CachedSource:
  """Reads the manifests of `name`/`split` (a cached task or mixture); opens no data file.

  Raises:
    cache.CacheError: not cached, or a manifest or shard is missing (one line).
  """
  manifest = cache.read_manifest(cache_dir, name, split)
  if manifest["kind"] == "task":
    rates = [(name, 1.0)]
  else:
    rates = [(t["name"], float(t["rate"])) for t in manifest["tasks"] if t["rate"] > 0]
    if not rates:
      raise cache.CacheError(f"mixture {name!r} in {cache_dir} has no task with a positive rate")
  tasks = [cache.read_manifest(cache_dir, t, split) for t, _ in rates]
  for t, m in zip(rates, tasks):
    if m["kind"] != "task":
      raise cache.CacheError(f"{t[0]}/{split} in {cache_dir} is a mixture, not a task; "
                             "nested mixtures are not supported by the cache")
  sizes = tuple(int(m["num_examples"]) for m in tasks)
  return CachedSource(name, tuple(t for t, _ in rates), sizes, tuple(r for _, r in rates),
                      mixture_quotas(sizes, [r for _, r in rates]),
                      tuple(tuple(cache.shard_instructions(cache_dir, m)) for m in tasks))


def _seed32(seed: int, stream: int) -> int:
  return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


class QuotaEpochs(grain.transforms.DatasetSelectionMap):
  """Global position -> (task, position in that task's stream): lazily shuffled quota epochs."""

  def __init__(self, quotas: Sequence[int], seed: int):
    self._quotas = tuple(int(q) for q in quotas)
    self._ends = list(np.cumsum(self._quotas).tolist())
    self._epoch = self._ends[-1]
    self._seed = _seed32(seed, _MIX_STREAM)

  def __len__(self) -> int:
    return sys.maxsize

  def __getitem__(self, index: int) -> tuple[int, int]:
    epoch, offset = divmod(int(index), self._epoch)
    slot = grain.experimental.index_shuffle(
        offset, max_index=self._epoch - 1, seed=(self._seed + epoch) % 2**32, rounds=4)
    task = bisect.bisect_right(self._ends, slot)
    start = self._ends[task - 1] if task else 0
    return task, epoch * self._quotas[task] + slot - start


class ExampleIndex:
  """Global position -> (task, record): the mixture's quota epochs, then the task's own
  per-epoch permutation, exactly as `grain.MapDataset.range(n).shuffle(seed_t).repeat()`."""

  def __init__(self, source: CachedSource, seed: int):
    self._mix = QuotaEpochs(source.quotas, seed)
    self._sizes = source.sizes
    self._seeds = tuple(_seed32(seed, t) for t in range(len(source.sizes)))

  def __getitem__(self, position: int) -> tuple[int, int]:
    task, k = self._mix[position]
    epoch, offset = divmod(k, self._sizes[task])
    return task, grain.experimental.index_shuffle(
        offset, max_index=self._sizes[task] - 1, seed=(self._seeds[task] + epoch) % 2**32,
        rounds=4)


class TaskRecords:
  """Records of one cached task by index, over its shard files (readers open on first use).

  Reads go straight to ArrayRecord's C++ reader, one batched `read` per file, in the calling
  thread (`ArrayRecordDataSource.__getitems__` starts a thread pool on every call, which
  costs more than it saves at a batch's few hundred records).
  """

  def __init__(self, shards: Sequence[str]):
    self._files, ends = [], []
    for shard in shards:
      path, _, span = shard.rpartition("[")
      start, stop = (int(x) for x in span.rstrip("]").split(":"))
      self._files.append((path, start))
      ends.append((ends[-1] if ends else 0) + stop - start)
    self._ends = ends
    self._readers: list = [None] * len(shards)

  def _reader(self, f: int):
    if self._readers[f] is None:
      from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
      self._readers[f] = array_record_module.ArrayRecordReader(
          self._files[f][0], "readahead_buffer_size:0,max_parallelism:1")
    return self._readers[f]

  def read(self, records: Sequence[int]) -> list[bytes]:
    by_file = collections.defaultdict(list)
    for i, r in enumerate(records):
      f = bisect.bisect_right(self._ends, r)
      by_file[f].append((i, r - (self._ends[f - 1] if f else 0) + self._files[f][1]))
    out: list[bytes] = [b""] * len(records)
    for f, items in by_file.items():
      for (i, _), data in zip(items, self._reader(f).read([pos for _, pos in items])):
        out[i] = data
    return out


class ExampleReader:
  """Reads the examples at global positions: batched, per task, by record index."""

  def __init__(self, source: CachedSource, seed: int):
    self.index = ExampleIndex(source, seed)
    self._tasks = [TaskRecords(shards) for shards in source.shards]

  def read(self, positions: Sequence[int]) -> list[dict]:
    by_task = collections.defaultdict(list)
    for row, p in enumerate(positions):
      task, record = self.index[p]
      by_task[task].append((row, record))
    out: list[dict] = [{}] * len(positions)
    for task, items in by_task.items():
      for (row, _), data in zip(items, self._tasks[task].read([r for _, r in items])):
        out[row] = cache.decode_example(data)
    return out


def _check_sharding(batch_size: int, shard_id: int, num_shards: int) -> None:
  if batch_size % num_shards:
    raise ValueError(f"global batch size {batch_size} is not divisible by {num_shards} shards")
  if not 0 <= shard_id < num_shards:
    raise ValueError(f"shard_id {shard_id} not in [0, {num_shards})")


class StreamIterator:
  """Endless iterator of this process's block of each global batch, read from a cache.

  Same batches format and attributes (`step`, `stats`, `local_batch_size`, `examples_at`) as
  `pipeline.TrainIterator`.
  """

  def __init__(self, source: CachedSource, feature_lengths: Mapping[str, int], batch_size: int,
               seed: int = 0, shard_id: int = 0, num_shards: int = 1, start_step: int = 0,
               converter: str = "hint", num_task_rows: int | None = None,
               prefetch: int = 2):
    _check_sharding(batch_size, shard_id, num_shards)
    self.source, self.lengths, self.batch_size = source, dict(feature_lengths), batch_size
    self.seed, self.shard_id, self.converter = seed, shard_id, converter
    self.local_batch_size = batch_size // num_shards
    self.step = start_step
    self.stats = converters.ConvertStats()
    self._reader = ExampleReader(source, seed)
    self._convert = functools.partial(converters.convert, converter, lengths=self.lengths,
                                      num_task_rows=num_task_rows)
    steps = grain.MapDataset.range(start_step, sys.maxsize).map(self._batch_at)
    options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch)
    self._batches = (iter(steps.to_iter_dataset(options)) if prefetch
                     else (self._batch_at(s) for s in itertools.count(start_step)))

  def _batch_at(self, step: int) -> tuple[Batch, converters.ConvertStats]:
    return self._convert(self.examples_at(step))

  def examples_at(self, step: int) -> list[dict]:
    """The raw examples of this process's rows of global batch `step`."""
    start = step * self.batch_size + self.shard_id * self.local_batch_size
    return self._reader.read(range(start, start + self.local_batch_size))

  def __iter__(self) -> "StreamIterator":
    return self

  def __next__(self) -> Batch:
    batch, stats = next(self._batches)
    pipeline.record_stats(self, stats)
    return batch


def train_iterator(cache_dir: str | os.PathLike, name: str, split: str,
                   feature_lengths: Mapping[str, int], batch_size: int, seed: int = 0,
                   shard_id: int = 0, num_shards: int = 1, start_step: int = 0,
                   converter: str = "hint", num_task_rows: int | None = None,
                   prefetch: int = 2) -> StreamIterator:
  """Deterministic, endless, shuffled training batches of a cached task or mixture.

  Args:
    cache_dir: directory written by `hint-jax cache-tasks`.
    name, split, feature_lengths, batch_size, seed, shard_id, num_shards, start_step,
      converter, num_task_rows: as for `pipeline.train_iterator`.
    prefetch: batches read ahead by a Grain thread (0: none, read on `next`).

  Returns:
    A `StreamIterator` yielding block `shard_id` of `num_shards` of each global batch.

  Raises:
    cache.CacheError: `name`/`split` is not (completely) cached in `cache_dir`.
  """
  return StreamIterator(open_source(cache_dir, name, split), feature_lengths, batch_size, seed,
                        shard_id, num_shards, start_step, converter, num_task_rows, prefetch)
