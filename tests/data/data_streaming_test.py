"""Tests of the task cache and the streaming train source: determinism, resume, input shards,
mixture rates, windowed task orders, errors. Examples are generated token arrays written
straight to a cache in tmp_path (no TensorFlow); data_streaming_cache_test.py covers caching
registered tasks."""
import collections
import json

import numpy as np
import pytest

from hint_jax.data import cache, pipeline, streaming
from hint_jax.data import features as F
from hint_jax.run import assemble
from hint_jax.training import batches

LENGTHS = {F.INSTRUCTION: 6, F.INPUTS: 8, F.TARGETS: 4}
WINDOW = 8  # examples per shuffling window in these tests: 2 blocks of task a


def _examples(task: int, n: int):
  rng = np.random.default_rng(task)
  for i in range(n):
    yield {F.INSTRUCTION: np.array([10 + task, 7, F.EOS_ID], np.int32),
           F.INPUTS: np.append(rng.integers(3, 70000, rng.integers(1, 10)), F.EOS_ID).astype(
               np.int32),
           F.TARGETS: np.array([3 + i, F.EOS_ID], np.int32),
           "targets_pretokenized": f"{task}:{i}", "task": f"task{task}", "label": np.int64(i)}


@pytest.fixture(name="cache_dir")
def _cache_dir(tmp_path):
  cache.write_task(tmp_path, "a", "train", _examples(0, 40), examples_per_shard=15,
                   examples_per_block=4)
  cache.write_task(tmp_path, "b", "train", _examples(1, 10), compression="uncompressed",
                   examples_per_block=3)
  cache.write_mixture(tmp_path, "ab", "train", [("a", 20.0), ("b", 10.0)])  # a capped at 20
  return tmp_path


def _stream(cache_dir, name="ab", **kw):
  kw.setdefault("batch_size", 8)
  kw.setdefault("window_examples", WINDOW)
  return streaming.train_iterator(cache_dir, name, "train", LENGTHS, **kw)


def _assert_same(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_records_round_trip_every_field(cache_dir):
  want = list(_examples(0, 40))
  manifest = cache.read_manifest(cache_dir, "a", "train")
  # shards of whole blocks of 4: 16 + 16 + 8 examples, 4 + 4 + 2 ArrayRecord records
  assert [(s["num_records"], s["num_examples"]) for s in manifest["shards"]] == [
      (4, 16), (4, 16), (2, 8)]
  blocks = streaming.TaskBlocks(cache.shard_instructions(cache_dir, manifest))
  assert [len(b) for b in blocks.read(range(10))] == [4] * 10
  records = list(cache.read_examples(cache_dir, manifest))
  assert len(records) == 40
  assert [cache.decode_example(e) for e in blocks.read([9])[0]][1]["label"] == 37
  for w, g in zip(want, records):
    assert w.keys() == g.keys()
    for k in w:
      np.testing.assert_array_equal(g[k], w[k], err_msg=k)
      assert type(g[k]) is type(w[k]) and getattr(g[k], "dtype", None) == getattr(w[k], "dtype",
                                                                                   None)


def test_same_seed_same_batches_other_seed_differs(cache_dir):
  a, b, c = _stream(cache_dir, seed=3), _stream(cache_dir, seed=3), _stream(cache_dir, seed=4)
  first_a, first_c = [next(a) for _ in range(5)], [next(c) for _ in range(5)]
  for x in first_a:
    _assert_same(x, next(b))
  assert not all(np.array_equal(x[F.ENCODER_INPUT_TOKENS], y[F.ENCODER_INPUT_TOKENS])
                 for x, y in zip(first_a, first_c))


@pytest.mark.parametrize("prefetch", [0, 3])
def test_resume_at_step_k_equals_uninterrupted_run(cache_dir, prefetch):
  full = _stream(cache_dir, seed=1, prefetch=prefetch)
  run = [next(full) for _ in range(12)]  # 96 examples: past two mixture epochs of 30
  for k in (1, 4, 7):
    resumed = _stream(cache_dir, seed=1, start_step=k, prefetch=prefetch)
    for want in run[k:k + 4]:
      _assert_same(next(resumed), want)
    assert resumed.step == k + 4


def test_batches_match_the_in_memory_format(cache_dir):
  got = next(_stream(cache_dir, batch_size=8))
  source = pipeline.Source("a", ("a",), (tuple(_examples(0, 40)),), (40,))
  want = next(pipeline.TrainIterator(source, LENGTHS, 8))
  assert got.keys() == want.keys()
  for k in want:
    assert (got[k].dtype, got[k].shape) == (want[k].dtype, want[k].shape), k


@pytest.mark.parametrize("count", [2, 4])
def test_input_shards_concatenate_to_the_global_batch(cache_dir, count):
  whole = _stream(cache_dir, batch_size=8, seed=2, start_step=3)
  parts = [_stream(cache_dir, batch_size=8, seed=2, start_step=3, shard_id=i, num_shards=count)
           for i in range(count)]
  for _ in range(3):
    want, got = next(whole), [next(p) for p in parts]
    for key in (F.ENCODER_INPUT_TOKENS, F.DECODER_TARGET_TOKENS, F.DECODER_LOSS_WEIGHTS):
      np.testing.assert_array_equal(np.concatenate([g[key] for g in got]), want[key])
    rows = [g[F.HYPER_ENCODER_INPUT_TOKENS][g[F.TASK_INDEX]] for g in got]
    np.testing.assert_array_equal(
        np.concatenate(rows), want[F.HYPER_ENCODER_INPUT_TOKENS][want[F.TASK_INDEX]])
    assert got[0][F.HYPER_ENCODER_INPUT_TOKENS].shape == (8 // count, LENGTHS[F.INSTRUCTION])


def test_mixture_rates_follow_capped_example_counts(cache_dir):
  source = streaming.open_source(cache_dir, "ab", "train")
  assert source.sizes == (40, 10) and source.rates == (20.0, 10.0)
  assert source.quotas == (33, 17)  # rates 2:1 scaled to the 50 examples, as load_source does
  it = _stream(cache_dir, batch_size=10, seed=5)
  examples = [ex for s in range(15) for ex in it.examples_at(s)]  # 150 = 3 mixture epochs
  for epoch in range(3):
    tasks = collections.Counter(ex["task"] for ex in examples[50 * epoch:50 * (epoch + 1)])
    assert tasks == {"task0": 33, "task1": 17}
  # task b's stream positions 0..50 (3 x 17): 5 whole task epochs, each a permutation of all
  # its 10 examples, plus one more
  counts = collections.Counter(ex["targets_pretokenized"] for ex in examples
                               if ex["task"] == "task1")
  assert set(counts) == {f"1:{i}" for i in range(10)}
  assert sorted(counts.values()) == [5] * 9 + [6]


def test_quota_epochs_interleave_at_the_rates_and_keep_task_streams_consecutive():
  sel = streaming.QuotaEpochs([5, 3, 1])
  for epoch in range(3):
    picks = [sel[epoch * 9 + o] for o in range(9)]
    assert sorted(picks) == sorted([(0, epoch * 5 + i) for i in range(5)]
                                   + [(1, epoch * 3 + i) for i in range(3)] + [(2, epoch)])
  assert [t for t, _ in (sel[o] for o in range(9))] == [0, 1, 0, 0, 1, 2, 0, 1, 0]  # Webster
  assert sel[10**15] == (1, 10**15 // 9 * 3 + sel[10**15 % 9][1])
  big = streaming.QuotaEpochs([700, 290, 10])  # any range: rates to within one example
  tasks, ks = big.locate(1234, 1234 + 5000)
  for t, q in enumerate((700, 290, 10)):
    for a in range(0, 5000, 250):
      assert abs(np.sum(tasks[a:a + 250] == t) - 250 * q / 1000) <= 1.5
    assert (np.diff(ks[tasks == t]) == 1).all()  # a task's items come in stream order
  pieces = [big.locate(a, a + 37) for a in range(1234, 1234 + 37 * 20, 37)]
  np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), tasks[:740])
  np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), ks[:740])


def test_permute_is_a_bijection_for_any_size():
  for n in (1, 2, 3, 7, 16, 17, 255, 1000, 4097):
    keys = streaming._keys(5, 1, n)  # pylint: disable=protected-access
    out = streaming.permute(np.arange(n), n, keys)
    assert sorted(out.tolist()) == list(range(n)), n
  a, b = (streaming.permute(np.arange(1000), 1000, streaming._keys(s, 1))  # pylint: disable=protected-access
          for s in (0, 1))
  assert (a != b).mean() > 0.9


@pytest.mark.parametrize("size,block,window", [(40, 4, 8), (41, 4, 12), (10, 16, 4096),
                                               (1000, 16, 64)])
def test_task_streams_are_windowed_permutations(size, block, window):
  order = streaming.TaskOrder(0, size, block, seed=3, window_examples=window)
  blocks, inside = order.locate(np.arange(3 * size))
  examples = blocks * block + inside
  for epoch in range(3):
    assert sorted(examples[epoch * size:(epoch + 1) * size]) == list(range(size))
  assert not np.array_equal(examples[:size], examples[size:2 * size]) or size <= block
  per = order.window_blocks * block  # each window: its own W blocks, in any order inside
  for start in range(0, size - size % per, per):
    assert len(set(blocks[start:start + per].tolist())) == order.window_blocks
  again = streaming.TaskOrder(0, size, block, seed=3, window_examples=window)
  np.testing.assert_array_equal(again.locate(np.arange(5, 3 * size, 7))[0], blocks[5::7])


def test_each_host_reads_whole_blocks_once_per_window(cache_dir):
  it = _stream(cache_dir, name="a", batch_size=4, seed=2, prefetch=0)
  seen = [ex["label"] for s in range(30) for ex in it.examples_at(s)]  # 3 epochs of 40
  assert it.reader.blocks_read <= 30  # 10 blocks per epoch, each read at most once
  assert len(it.reader._blocks[0]) <= it.reader.capacity[0] == 3  # pylint: disable=protected-access
  assert sorted(int(x) for x in seen[:40]) == list(range(40))
  index = streaming.ExampleIndex(streaming.open_source(cache_dir, "a", "train"), 2, WINDOW)
  assert [index[p][1] for p in range(120)] == [int(x) for x in seen]


def test_train_source_streams_when_cache_dir_is_set(cache_dir):
  cfg = assemble.DataConfig("ab", LENGTHS, batch_size=8, seed=1, cache_dir=str(cache_dir))
  it = assemble.train_source(cfg)(2, batches.InputShard(1, 2))
  assert isinstance(it, streaming.StreamIterator) and it.local_batch_size == 4
  _assert_same(next(it), next(_stream(cache_dir, seed=1, start_step=2, shard_id=1,
                                      num_shards=2,
                                      window_examples=streaming.WINDOW_EXAMPLES)))


def test_missing_cache_or_shard_is_a_one_line_error(cache_dir, tmp_path):
  with pytest.raises(cache.CacheError, match="does not exist; run `hint-jax cache-tasks`"):
    _stream(tmp_path / "nowhere")
  with pytest.raises(cache.CacheError, match=r"c/train is not cached .*cached: a/train, "
                                             r"ab/train, b/train"):
    _stream(cache_dir, name="c")
  (cache_dir / "a" / "train" / "data-00001.array_record").unlink()
  with pytest.raises(cache.CacheError) as e:
    _stream(cache_dir)
  assert "data-00001.array_record is missing" in str(e.value) and "\n" not in str(e.value)
  with pytest.raises(ValueError, match="not divisible by 3 shards"):
    _stream(tmp_path, name="b", num_shards=3)


def test_old_cache_format_is_a_one_line_error_naming_cache_tasks(cache_dir):
  path = cache_dir / "b" / "train" / "manifest.json"
  manifest = json.loads(path.read_text())
  path.write_text(json.dumps({**manifest, "format": 1}))
  with pytest.raises(cache.CacheError) as e:
    _stream(cache_dir)
  assert "has format 1" in str(e.value) and "\n" not in str(e.value)
  assert "re-run `hint-jax cache-tasks b --split=train" in str(e.value)


def test_failed_write_leaves_no_shards_under_the_final_name(tmp_path):
  def broken():
    yield from _examples(0, 5)
    raise RuntimeError("tokenizer died")
  with pytest.raises(RuntimeError):
    cache.write_task(tmp_path, "a", "train", broken())
  assert not (tmp_path / "a" / "train").exists()
  assert list((tmp_path / "a").iterdir()) == []
  cache.write_task(tmp_path, "a", "train", _examples(0, 5))
  cache.write_task(tmp_path, "a", "train", _examples(0, 7))  # replaces the complete cache
  assert cache.read_manifest(tmp_path, "a", "train")["num_examples"] == 7
  assert [p.name for p in (tmp_path / "a").iterdir()] == ["train"]
