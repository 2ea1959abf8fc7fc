"""LRU cache of generated task adaptations keyed by content hash, with a byte budget and disk tier."""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from hint_jax.peft import spec
from hint_jax.serving import task_params_io


@dataclasses.dataclass(frozen=True)
class Adaptation:
  """Everything generated once per instruction.

  Attributes:
    task_params: TaskParams with a leading task axis of size 1 ([1, N, ...]).
    hidden: fused instruction encoding H_I [1, I, D], or None (no fusion, or `memory` instead).
    mask: its padding mask [1, I], or None.
    memory: H_I projected to the decoder's cross-attention keys/values [1, N, I, H, K] each
      (`HintModel.cache_memory`), or None.
  """
  task_params: spec.TaskParams
  hidden: Any | None = None
  mask: Any | None = None
  memory: spec.PrefixKV | None = None

  def extra_arrays(self) -> dict[str, Any]:
    """The arrays besides TaskParams, by name (as the disk tier stores them)."""
    named = {"hidden": self.hidden, "mask": self.mask}
    if self.memory is not None:
      named.update(memory_key=self.memory.key, memory_value=self.memory.value)
    return {n: v for n, v in named.items() if v is not None}

  @property
  def num_bytes(self) -> int:
    extra = sum(x.size * x.dtype.itemsize for x in self.extra_arrays().values())
    return spec.num_bytes(self.task_params) + extra


def cache_key(instruction: str, checkpoint_id: str) -> str:
  """Content hash of (instruction, checkpoint identity): sha256 hex digest."""
  payload = json.dumps([checkpoint_id, instruction], ensure_ascii=False)
  return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclasses.dataclass
class CacheStats:
  hits: int = 0
  disk_hits: int = 0
  misses: int = 0
  evictions: int = 0


class TaskParamsCache:
  """In-memory LRU of `Adaptation`s whose total `num_bytes` never exceeds `max_bytes`.

  An entry larger than the whole budget is not kept in memory (but still goes to disk). With
  `disk_dir`, every new entry is also written as `<key>.safetensors`, and a memory miss is
  looked up there before the factory runs.
  """

  def __init__(self, max_bytes: int, disk_dir: str | None = None):
    if max_bytes < 0:
      raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    self.max_bytes = max_bytes
    self.disk_dir = disk_dir
    self.stats = CacheStats()
    self._entries: collections.OrderedDict[str, Adaptation] = collections.OrderedDict()
    self._bytes = 0

  @property
  def num_bytes(self) -> int:
    return self._bytes

  def __len__(self) -> int:
    return len(self._entries)

  def __contains__(self, key: str) -> bool:
    return key in self._entries

  def keys(self) -> list[str]:
    """Keys from least to most recently used."""
    return list(self._entries)

  def get(self, key: str) -> Adaptation | None:
    """The entry (memory first, then disk), or None. Counts hits; a miss is counted by callers."""
    entry = self._entries.get(key)
    if entry is not None:
      self._entries.move_to_end(key)
      self.stats.hits += 1
      return entry
    entry = self._read_disk(key)
    if entry is not None:
      self.stats.disk_hits += 1
      self._insert(key, entry)
    return entry

  def put(self, key: str, entry: Adaptation) -> None:
    """Adds (or refreshes) an entry, evicting least recently used ones to fit the budget."""
    self._insert(key, entry)
    self._write_disk(key, entry)

  def get_or_create(self, key: str, factory: Callable[[], Adaptation]) -> Adaptation:
    entry = self.get(key)
    if entry is None:
      self.stats.misses += 1
      entry = factory()
      self.put(key, entry)
    return entry

  def clear_memory(self) -> None:
    self._entries.clear()
    self._bytes = 0

  def _insert(self, key: str, entry: Adaptation) -> None:
    old = self._entries.pop(key, None)
    if old is not None:
      self._bytes -= old.num_bytes
    size = entry.num_bytes
    if size > self.max_bytes:
      return
    while self._bytes + size > self.max_bytes:
      _, evicted = self._entries.popitem(last=False)
      self._bytes -= evicted.num_bytes
      self.stats.evictions += 1
    self._entries[key] = entry
    self._bytes += size

  def _path(self, key: str) -> str:
    return os.path.join(self.disk_dir, f"{key}.safetensors")

  def _write_disk(self, key: str, entry: Adaptation) -> None:
    if self.disk_dir is None or os.path.exists(self._path(key)):
      return
    task_params_io.save(self._path(key), entry.task_params, extra=entry.extra_arrays())

  def _read_disk(self, key: str) -> Adaptation | None:
    if self.disk_dir is None or not os.path.exists(self._path(key)):
      return None
    params, extra = task_params_io.load(self._path(key))
    to_device = lambda x: None if x is None else jnp.asarray(x)
    memory = None
    if "memory_key" in extra:
      memory = spec.PrefixKV(key=to_device(extra["memory_key"]),
                             value=to_device(extra["memory_value"]))
    return Adaptation(task_params=jax.tree.map(jnp.asarray, params),
                      hidden=to_device(extra.get("hidden")), mask=to_device(extra.get("mask")),
                      memory=memory)
