"""Streaming training batches from a task cache: lazy, vectorized order; per-host block reads.

The example at global position p (batch `p // B`, row `p % B`) is a pure function of
`(seed, p)`, computed lazily, per batch and in numpy, without any per-epoch table:

1. Mixture epochs of `E = sum(quotas)` slots, `quotas` as in `pipeline.load_source` (mixture
   rates scaled to the total example count; T0's `examples_rate` caps reach us as rates).
   Within an epoch the tasks are interleaved by Webster's (Sainte-Lague) apportionment: item i
   of task t comes at key `(i + 1/2) / q_t` (ties: lower task first), so every stretch of the
   epoch holds each task at its rate (to within one example), and task t's items of any range
   of positions are consecutive in its stream (`epoch * q_t + i`): its i-th slot ever is
   stream position i. Position -> item is a binary search on exact integer ranks.
2. Task t's stream: its examples, cached in blocks of `b` consecutive examples (one
   ArrayRecord record each), under a fresh order per task epoch: a keyed lazy permutation of
   its full blocks (the short last block, if any, last), cut into windows of
   `W = window_examples // b` blocks, and a keyed permutation of the examples of each window.
   So consecutive stream positions are a random sample of `W` blocks from all over the task,
   and a window is used up before the next one starts.

The permutations are 4-round Feistel networks with cycle walking (keys from `(seed, task,
epoch[, window])`), applied to whole arrays: no per-example Python call. A process fed by
`InputShard(index, count)` computes only its rows `[index * B / count, ...)` of each global
batch, reads the blocks they fall in (whole, one read per block; a per-task LRU of
1.25 windows of blocks keeps them while the window lasts) and decodes only its own examples.
So start-up costs one manifest per task plus each file's record index (about 60 bytes per
block, i.e. under 1 byte per example), and host memory is a few batches plus that LRU of raw
examples: independent of the dataset size. Batches are built by
`converters.convert`, exactly as in `pipeline.TrainIterator`, and prefetched in order by a
Grain thread.
"""
import bisect
import collections
import dataclasses
import functools
import itertools
import os
import sys
import threading
from collections.abc import Mapping, Sequence

import grain
import numpy as np

from hint_jax.data import cache, converters, pipeline

Batch = converters.Batch
WINDOW_EXAMPLES = 4096  # examples per window of a task stream (W = this // examples_per_block)
_ROUNDS = 4
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_BLOCK_ORDER, _WINDOW_ORDER = 2, 3  # seed-sequence tags


@dataclasses.dataclass(frozen=True)
class CachedSource:
  """The cached tasks of a task or mixture, their sizes, rates and per-epoch quotas."""
  name: str
  task_names: tuple[str, ...]
  sizes: tuple[int, ...]
  rates: tuple[float, ...]
  quotas: tuple[int, ...]
  shards: tuple[tuple[str, ...], ...]  # per task: ArrayRecord read instructions (blocks)
  block_sizes: tuple[int, ...] = ()  # per task: examples per block

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
    cache.CacheError: not cached, an old cache format, or a manifest or shard is missing
      (one line).
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
                      tuple(tuple(cache.shard_instructions(cache_dir, m)) for m in tasks),
                      tuple(int(m["examples_per_block"]) for m in tasks))


@functools.lru_cache(maxsize=4096)
def _keys(seed: int, *stream: int) -> np.ndarray:
  return np.random.SeedSequence([seed, *stream]).generate_state(_ROUNDS, np.uint64)


def permute(x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
  """A keyed bijection of [0, n) applied to the int array `x` (values in [0, n)).

  A balanced Feistel network on the smallest even number of bits that holds n, with cycle
  walking (values that land in [n, 2^bits) are permuted again until they fall below n).
  """
  x = np.asarray(x, np.int64)
  if n <= 1:
    return np.zeros_like(x)
  half = max(1, ((n - 1).bit_length() + 1) // 2)
  shift, mask = np.uint64(half), np.uint64((1 << half) - 1)
  out, todo, cur = np.empty_like(x), np.arange(x.size), x.astype(np.uint64)
  while todo.size:
    left, right = cur >> shift, cur & mask
    for key in keys:
      h = (right ^ key) * _M1
      h = (h ^ (h >> np.uint64(31))) * _M2
      left, right = right, left ^ ((h ^ (h >> np.uint64(29))) & mask)
    cur = (left << shift) | right
    done = cur < np.uint64(n)
    out[todo[done]] = cur[done]
    todo, cur = todo[~done], cur[~done]
  return out


class QuotaEpochs:
  """Global position -> (task, position in that task's stream): Webster-interleaved epochs."""

  def __init__(self, quotas: Sequence[int]):
    self._q = np.asarray(quotas, np.int64)
    self._epoch = int(self._q.sum())
    self._cum: dict[int, np.ndarray] = {}

  def _rank(self, task: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Offset in the epoch of item i of task `task` (arrays): #items with a smaller key."""
    a = (2 * i + 1)[:, None] * self._q[None, :]
    b = self._q[task][:, None]
    quot, rem = np.divmod(a, b)
    before = (quot + (rem > 0)) // 2
    before += (rem == 0) & (quot % 2 == 1) & (np.arange(len(self._q))[None, :] < task[:, None])
    return before.sum(axis=1)

  def _items_before(self, offset: int) -> np.ndarray:
    """Per task: how many of its items an epoch has before `offset` (binary search, first
    near the proportional count `offset * q_t / E`, then over all of [0, q_t] if that fails)."""
    if offset not in self._cum:
      near, slack = offset * self._q // self._epoch, len(self._q) + 2
      lo = self._search(offset, np.maximum(near - slack, 0), np.minimum(near + slack, self._q))
      tasks = np.arange(len(self._q))
      ok = ((lo == 0) | (self._rank(tasks, np.maximum(lo - 1, 0)) < offset)) & (
          (lo == self._q) | (self._rank(tasks, np.minimum(lo, self._q - 1)) >= offset))
      if not ok.all():
        lo = self._search(offset, np.zeros_like(self._q), self._q.copy())
      if len(self._cum) > 64:
        self._cum.clear()
      self._cum[offset] = lo
    return self._cum[offset]

  def _search(self, offset: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per task: the first i in [lo, hi) whose rank is >= offset, else hi."""
    tasks = np.arange(len(self._q))
    while (open_ := lo < hi).any():
      mid = (lo + hi) // 2
      below = np.zeros_like(open_)
      below[open_] = self._rank(tasks[open_], mid[open_]) < offset
      lo = np.where(open_ & below, mid + 1, lo)
      hi = np.where(open_ & ~below, mid, hi)
    return lo

  def locate(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Tasks and task-stream positions of global positions [start, stop)."""
    if len(self._q) == 1:
      return np.zeros(stop - start, np.int64), np.arange(start, stop, dtype=np.int64)
    tasks, ks = [], []
    p = start
    while p < stop:
      epoch, a = divmod(p, self._epoch)
      b = min(self._epoch, a + stop - p)
      lo, hi = self._items_before(a), self._items_before(b)
      task = np.repeat(np.arange(len(self._q)), hi - lo)
      i = np.concatenate([np.arange(x, y) for x, y in zip(lo, hi)])
      order = np.argsort(self._rank(task, i), kind="stable")
      tasks.append(task[order])
      ks.append(epoch * self._q[task[order]] + i[order])
      p += b - a
    return np.concatenate(tasks), np.concatenate(ks)

  def __getitem__(self, position: int) -> tuple[int, int]:
    task, k = self.locate(int(position), int(position) + 1)
    return int(task[0]), int(k[0])


class TaskOrder:
  """Task stream position -> (block, index in block): windows of shuffled blocks per epoch."""

  def __init__(self, task: int, size: int, block: int, seed: int,
               window_examples: int = WINDOW_EXAMPLES):
    self.task, self.size, self.block, self.seed = task, size, block, seed
    self.window_blocks = max(1, window_examples // block)
    self._full, self._blocks = size // block, -(-size // block)
    self._window = self.window_blocks * block

  def locate(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    epoch, offset = np.divmod(np.asarray(k, np.int64), self.size)
    window, j = np.divmod(offset, self._window)
    group = epoch * (self._blocks // self.window_blocks + 1) + window
    cuts = np.flatnonzero(np.diff(group)) + 1
    blocks, inside = np.empty_like(j), np.empty_like(j)
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(j)]):
      e, w = int(epoch[lo]), int(window[lo])
      count = min(self._window, self.size - w * self._window)
      jj = permute(j[lo:hi], count, _keys(self.seed, _WINDOW_ORDER, self.task, e, w))
      pos = w * self.window_blocks + jj // self.block
      full = pos < self._full
      order = permute(np.where(full, pos, 0), self._full,
                      _keys(self.seed, _BLOCK_ORDER, self.task, e))
      blocks[lo:hi] = np.where(full, order, self._blocks - 1)
      inside[lo:hi] = jj % self.block
    return blocks, inside


class ExampleIndex:
  """Global position -> (task, block, index in block): the mixture's quota epochs, then the
  task's windowed block order."""

  def __init__(self, source: CachedSource, seed: int, window_examples: int = WINDOW_EXAMPLES):
    self.mix = QuotaEpochs(source.quotas)
    self.tasks = [TaskOrder(t, n, b, seed, window_examples)
                  for t, (n, b) in enumerate(zip(source.sizes, source.block_sizes))]

  def locate(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    task, k = self.mix.locate(start, stop)
    block, inside = np.empty_like(k), np.empty_like(k)
    for t in np.unique(task):
      rows = np.flatnonzero(task == t)
      block[rows], inside[rows] = self.tasks[t].locate(k[rows])
    return task, block, inside

  def __getitem__(self, position: int) -> tuple[int, int]:
    """(task, example index in the task) at a global position."""
    task, block, inside = self.locate(int(position), int(position) + 1)
    return int(task[0]), int(block[0]) * self.tasks[int(task[0])].block + int(inside[0])


class TaskBlocks:
  """Blocks of one cached task by index, over its shard files (readers open on first use).

  Reads go straight to ArrayRecord's C++ reader, in the calling thread
  (`ArrayRecordDataSource.__getitems__` starts a thread pool on every call).
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

  def read(self, blocks: Sequence[int]) -> list[list[bytes]]:
    """The encoded examples of each block (one block per read: at most one raw record lives
    next to the decoded ones, which keeps the peak RSS down by about two windows)."""
    out: list[list[bytes]] = []
    for r in blocks:
      f = bisect.bisect_right(self._ends, r)
      pos = r - (self._ends[f - 1] if f else 0) + self._files[f][1]
      out.append(cache.decode_block(self._reader(f).read([pos])[0]))
    return out


class ExampleReader:
  """Reads the examples at ranges of global positions: whole blocks, kept in an LRU."""

  def __init__(self, source: CachedSource, seed: int, window_examples: int = WINDOW_EXAMPLES):
    self.index = ExampleIndex(source, seed, window_examples)
    self._tasks = [TaskBlocks(shards) for shards in source.shards]
    # per task: one window of blocks plus a margin for the batch that crosses into the next
    self.capacity = [min(t.window_blocks * 5 // 4 + 1, -(-t.size // t.block))
                     for t in self.index.tasks]
    self._blocks = [collections.OrderedDict() for _ in source.shards]
    self._lock = threading.Lock()
    self.blocks_read = 0

  def read(self, start: int, stop: int) -> list[dict]:
    """The decoded examples at global positions [start, stop)."""
    with self._lock:
      task, block, inside = self.index.locate(start, stop)
      keys = list(zip(task.tolist(), block.tolist()))
      wanted = list(dict.fromkeys(keys))
      missing = collections.defaultdict(list)
      for t, b in wanted:
        if b in self._blocks[t]:
          self._blocks[t].move_to_end(b)
        else:
          missing[t].append(b)
      got = {}
      for t, blocks in missing.items():
        got.update(((t, b), data) for b, data in zip(blocks, self._tasks[t].read(blocks)))
        self.blocks_read += len(blocks)
      rows = [got[(t, b)] if (t, b) in got else self._blocks[t][b] for t, b in keys]
      for (t, b), data in got.items():
        self._blocks[t][b] = data
      for t, lru in enumerate(self._blocks):
        while len(lru) > self.capacity[t]:
          lru.popitem(last=False)
    return [cache.decode_example(data[i]) for data, i in zip(rows, inside.tolist())]


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
               prefetch: int = 2, window_examples: int = WINDOW_EXAMPLES):
    _check_sharding(batch_size, shard_id, num_shards)
    self.source, self.lengths, self.batch_size = source, dict(feature_lengths), batch_size
    self.seed, self.shard_id, self.converter = seed, shard_id, converter
    self.local_batch_size = batch_size // num_shards
    self.step = start_step
    self.stats = converters.ConvertStats()
    self.reader = ExampleReader(source, seed, window_examples)
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
    return self.reader.read(start, start + self.local_batch_size)

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
                   prefetch: int = 2, window_examples: int = WINDOW_EXAMPLES) -> StreamIterator:
  """Deterministic, endless, shuffled training batches of a cached task or mixture.

  Args:
    cache_dir: directory written by `hint-jax cache-tasks`.
    name, split, feature_lengths, batch_size, seed, shard_id, num_shards, start_step,
      converter, num_task_rows: as for `pipeline.train_iterator`.
    prefetch: batches read ahead by a Grain thread (0: none, read on `next`).
    window_examples: examples per shuffling window of a task stream (part of the order:
      keep it fixed across a run and its resumptions).

  Returns:
    A `StreamIterator` yielding block `shard_id` of `num_shards` of each global batch.

  Raises:
    cache.CacheError: `name`/`split` is not (completely) cached in `cache_dir`.
  """
  return StreamIterator(open_source(cache_dir, name, split), feature_lengths, batch_size, seed,
                        shard_id, num_shards, start_step, converter, num_task_rows, prefetch,
                        window_examples)
