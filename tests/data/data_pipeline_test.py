"""Tests of the batch pipeline on the synthetic suite: determinism, resume, sharding, eval."""
import hint_jax_tasks  # noqa: F401  (registers the tasks read by name)
import numpy as np
import pytest

from hint_jax.data import features as F
from hint_jax.data import pipeline, synthetic

LENGTHS = {F.INSTRUCTION: 16, F.INPUTS: 12, F.TARGETS: 16}


def _batches(it, n):
  return [next(it) for _ in range(n)]


def _assert_same(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_same_seed_same_order_other_seed_differs():
  a = _batches(pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 8, seed=5), 3)
  b = _batches(pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 8, seed=5), 3)
  c = _batches(pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 8, seed=6), 3)
  for x, y in zip(a, b):
    _assert_same(x, y)
  assert not np.array_equal(a[0][F.ENCODER_INPUT_TOKENS], c[0][F.ENCODER_INPUT_TOKENS])


def test_resume_matches_uninterrupted_run_across_epoch_boundary():
  epoch = len(pipeline.load_task("synthetic_hint", "train"))
  step = epoch // 64 - 1  # the next steps straddle the end of the first epoch
  full = pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 64, seed=1)
  expected = [full.examples_at(step + i) for i in range(3)]
  resumed = pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 64, seed=1,
                                    start_step=step)
  for want in expected:
    got = next(resumed)
    batch, _ = pipeline.converters.hint_batch(want, LENGTHS)
    _assert_same(got, batch)
  assert resumed.step == step + 3


def test_epoch_visits_every_example_once():
  source = pipeline.load_source("synthetic_hint", "train")
  order = pipeline.epoch_order(source, seed=0, epoch=2)
  assert len(order) == source.epoch_size
  assert len({tuple(p) for p in order}) == source.epoch_size


def test_shards_partition_the_global_batch():
  whole = next(pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 8, seed=2))
  parts = [next(pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 8, seed=2,
                                        shard_id=i, num_shards=2)) for i in range(2)]
  for key in (F.ENCODER_INPUT_TOKENS, F.DECODER_TARGET_TOKENS):
    np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])
  assert parts[0][F.HYPER_ENCODER_INPUT_TOKENS].shape == (4, 16)
  with pytest.raises(ValueError, match="not divisible by 3 shards"):
    pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 8, num_shards=3)


def test_task_table_lookup_gives_each_example_its_instruction():
  it = pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 16, seed=0)
  examples = it.examples_at(0)
  batch = next(it)
  rows = batch[F.HYPER_ENCODER_INPUT_TOKENS][batch[F.TASK_INDEX]]
  for row, ex in zip(rows, examples):
    np.testing.assert_array_equal(row[:len(ex[F.INSTRUCTION])], ex[F.INSTRUCTION])
  assert batch[F.HYPER_ENCODER_INPUT_TOKENS].shape == (16, 16)


def test_eval_set_covers_every_example_once_with_padding_masked():
  evs = [pipeline.eval_set("synthetic_hint", "heldout_task", LENGTHS, 48, shard_id=i,
                           num_shards=2) for i in range(2)]
  n = len(evs[0].examples)
  ids = np.concatenate([i for ev in evs for i in ev.example_ids])
  assert sorted(ids[ids >= 0].tolist()) == list(range(n))
  for ev in evs:
    for batch, ids_b in zip(ev, ev.example_ids):
      assert batch[F.ENCODER_INPUT_TOKENS].shape == (24, 12)
      weights = batch[F.DECODER_LOSS_WEIGHTS].sum(axis=1)
      assert (weights[ids_b < 0] == 0).all() and (weights[ids_b >= 0] > 0).all()
  first = evs[0].examples[0]
  assert first["task"] == "second_words" and isinstance(first["targets_pretokenized"], str)


def test_concat_converter_and_unknown_name():
  batch = next(pipeline.train_iterator("synthetic_concat", "train", LENGTHS, 4, converter="concat"))
  assert set(batch) == {F.ENCODER_INPUT_TOKENS, F.DECODER_INPUT_TOKENS, F.DECODER_TARGET_TOKENS,
                        F.DECODER_LOSS_WEIGHTS}
  with pytest.raises(ValueError, match="unknown task or mixture 'sni_nope'; available: .*synth"):
    pipeline.train_iterator("sni_nope", "train", LENGTHS, 4)
  with pytest.raises(ValueError, match="has no split 'dev'"):
    pipeline.train_iterator("synthetic_hint", "dev", LENGTHS, 4)


@pytest.mark.parametrize("name, converter, lengths", [
    ("synthetic_hint", "hint", synthetic.FEATURE_LENGTHS),
    ("synthetic_concat", "concat", synthetic.CONCAT_FEATURE_LENGTHS)])
def test_synthetic_demo_lengths_never_truncate(name, converter, lengths):
  for split in synthetic.SPLITS:
    evs = pipeline.eval_set(name, split, lengths, 256, converter=converter)
    assert sum(evs.stats.truncated.values()) == 0, (split, evs.stats)


def test_truncation_is_logged_and_counted(caplog):
  short = {F.INSTRUCTION: 4, F.INPUTS: 3, F.TARGETS: 2}
  it = pipeline.train_iterator("synthetic_hint", "train", short, 8, seed=0)
  with caplog.at_level("WARNING"):
    next(it)
    next(it)
  assert it.stats.examples == 16 and it.stats.truncated[F.INSTRUCTION] == 16
  assert sum("truncating over-long sequences" in r.getMessage() for r in caplog.records) == 1


def test_grouped_epoch_same_examples_fewer_instructions_per_batch():
  source = pipeline.load_source("synthetic_hint", "train")
  keys = pipeline.instruction_ids(source)
  plain = pipeline.epoch_order(source, seed=3, epoch=1)
  grouped = pipeline.epoch_order(source, seed=3, epoch=1, group_size=8, keys=keys)
  assert sorted(map(tuple, grouped)) == sorted(map(tuple, plain))  # same examples, new order
  np.testing.assert_array_equal(
      grouped, pipeline.epoch_order(source, seed=3, epoch=1, group_size=8, keys=keys))

  def distinct(order):  # distinct instructions per batch of 64
    ids = np.array([keys[t][i] * 1000 + t for t, i in order])
    return [len(set(ids[s:s + 64])) for s in range(0, len(ids) - 63, 64)]

  assert max(distinct(grouped)) <= 64 // 8 + 4 < min(distinct(plain))


def test_grouped_batches_fall_back_to_a_full_table_when_rows_run_out():
  it = pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 32, seed=0, group_size=4,
                               num_task_rows=8)
  shapes = set()
  for _ in range(30):
    examples = it.examples_at(it.step)
    batch = next(it)
    shapes.add(batch[F.HYPER_ENCODER_INPUT_TOKENS].shape[0])
    rows = batch[F.HYPER_ENCODER_INPUT_TOKENS][batch[F.TASK_INDEX]]
    for row, ex in zip(rows, examples):
      np.testing.assert_array_equal(row[:len(ex[F.INSTRUCTION])], ex[F.INSTRUCTION])
  assert shapes == {8, 32}  # often <= 8 distinct instructions; a full table when not
  with pytest.raises(ValueError, match="group_size must be >= 1"):
    pipeline.train_iterator("synthetic_hint", "train", LENGTHS, 8, group_size=0)
