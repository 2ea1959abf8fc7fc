"""Tests for the TaskParams LRU cache and its disk tier."""
import jax
import numpy as np
import pytest

from hint_jax.peft import spec
from hint_jax.serving import cache as cache_lib

DIMS = spec.BackboneDims(d_model=6, num_heads=2, head_dim=3, num_encoder_layers=2,
                         num_decoder_layers=1)
PEFT = spec.PeftConfig(adapter_size=4, prefix_length=2, lora=spec.LoraConfig(rank=2))


def _entry(seed: int) -> cache_lib.Adaptation:
  structs = spec.task_param_structs(PEFT, DIMS, 1)
  leaves, treedef = jax.tree.flatten(structs)
  rng = np.random.default_rng(seed)
  params = jax.tree.unflatten(treedef, [rng.normal(size=s.shape).astype(np.float32)
                                        for s in leaves])
  return cache_lib.Adaptation(params, hidden=rng.normal(size=(1, 3, 6)).astype(np.float32),
                              mask=np.ones((1, 3), np.int32))


def test_key_depends_on_instruction_and_checkpoint():
  k = cache_lib.cache_key("Translate.", "ckpt-a")
  assert k == cache_lib.cache_key("Translate.", "ckpt-a")
  assert k != cache_lib.cache_key("Translate!", "ckpt-a")
  assert k != cache_lib.cache_key("Translate.", "ckpt-b")
  assert cache_lib.cache_key("", "ckpt-a") != cache_lib.cache_key("ckpt-a", "")


def test_lru_respects_byte_budget_and_order():
  size = _entry(0).num_bytes
  cache = cache_lib.TaskParamsCache(max_bytes=2 * size + size // 2)
  for i in range(3):
    cache.put(f"k{i}", _entry(i))
    assert cache.num_bytes <= cache.max_bytes
  assert cache.keys() == ["k1", "k2"] and cache.stats.evictions == 1
  assert cache.get("k1") is not None  # k1 becomes most recent, so k2 goes next
  cache.put("k3", _entry(3))
  assert cache.keys() == ["k1", "k3"]
  assert cache.num_bytes == 2 * size <= cache.max_bytes


def test_entry_bigger_than_budget_is_not_kept():
  cache = cache_lib.TaskParamsCache(max_bytes=10)
  cache.put("big", _entry(0))
  assert len(cache) == 0 and cache.num_bytes == 0


def test_get_or_create_calls_factory_once():
  cache = cache_lib.TaskParamsCache(max_bytes=1 << 20)
  calls = []
  factory = lambda: calls.append(1) or _entry(0)
  a = cache.get_or_create("k", factory)
  b = cache.get_or_create("k", factory)
  assert a is b and len(calls) == 1
  assert (cache.stats.hits, cache.stats.misses) == (1, 1)


def test_disk_tier_round_trips(tmp_path):
  cache = cache_lib.TaskParamsCache(max_bytes=1 << 20, disk_dir=str(tmp_path))
  entry = _entry(7)
  cache.put("k", entry)
  fresh = cache_lib.TaskParamsCache(max_bytes=1 << 20, disk_dir=str(tmp_path))
  loaded = fresh.get("k")
  assert loaded is not None and fresh.stats.disk_hits == 1
  jax.tree.map(np.testing.assert_array_equal, loaded.task_params, entry.task_params)
  np.testing.assert_array_equal(loaded.hidden, entry.hidden)
  np.testing.assert_array_equal(loaded.mask, entry.mask)
  assert loaded.task_params.encoder.lora["query"].scale == PEFT.lora.scale
  assert loaded.memory is None


def test_disk_tier_round_trips_cached_memory(tmp_path):
  rng = np.random.default_rng(3)
  kv = lambda: rng.normal(size=(1, 1, 3, 2, 3)).astype(np.float32)  # [1, N, I, H, K]
  entry = cache_lib.Adaptation(_entry(3).task_params, mask=np.ones((1, 3), np.int32),
                               memory=spec.PrefixKV(key=kv(), value=kv()))
  assert entry.num_bytes == spec.num_bytes(entry.task_params) + 3 * 4 + 2 * 18 * 4
  cache_lib.TaskParamsCache(max_bytes=1 << 20, disk_dir=str(tmp_path)).put("m", entry)
  loaded = cache_lib.TaskParamsCache(max_bytes=1 << 20, disk_dir=str(tmp_path)).get("m")
  assert loaded.hidden is None
  np.testing.assert_array_equal(loaded.memory.key, entry.memory.key)
  np.testing.assert_array_equal(loaded.memory.value, entry.memory.value)


def test_negative_budget_rejected():
  with pytest.raises(ValueError, match="max_bytes"):
    cache_lib.TaskParamsCache(max_bytes=-1)


def test_predictor_is_exported_from_package():
  import hint_jax.serving
  from hint_jax.serving import predictor
  assert hint_jax.serving.Predictor is predictor.Predictor
