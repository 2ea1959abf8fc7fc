"""Tests of `hint-jax cache-tasks` on small generated SeqIO tasks: the cache holds exactly the
in-memory pipeline's examples, mixtures keep T0's capped rates, errors are one line."""
import functools

import numpy as np
import pytest

from hint_jax.data import cache, pipeline, streaming
from hint_jax.data import features as F
from hint_jax.run import main as main_lib

SMALL, BIG, MIX = "stream_test_small", "stream_test_big", "stream_test_mix"
LENGTHS = {F.INSTRUCTION: 8, F.INPUTS: 8, F.TARGETS: 4}


def _records(split: str, n: int, word: str):
  del split
  return [{F.INSTRUCTION: f"Repeat the {word}.", F.INPUTS: f"{word} number {i}",
           F.TARGETS: f"{word} {i}", "task": word} for i in range(n)]


@pytest.fixture(scope="module", autouse=True)
def _register():
  from hint_jax_tasks import common  # pylint: disable=import-outside-toplevel  # TF only in this file
  common.add_task(SMALL, common.function_source(functools.partial(_records, n=8, word="cat"),
                                                ("train",)))
  common.add_task(BIG, common.function_source(functools.partial(_records, n=30, word="dog"),
                                              ("train",)))
  common.add_mixture(MIX, [SMALL, BIG], default_rate=functools.partial(common.examples_rate,
                                                                       cap=12))


def _assert_cached_equal(cache_dir, name, want):
  task = cache.read_manifest(cache_dir, name, "train")
  got = list(cache.read_examples(cache_dir, task))
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert g.keys() == w.keys()
    for k in w:
      np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def _cli(capsys, *args):
  status = main_lib.main(["cache-tasks", *map(str, args)])
  out = capsys.readouterr()
  return status, out.out, out.err


def test_cache_of_a_mixture_equals_the_in_memory_examples(tmp_path, capsys):
  status, out, err = _cli(capsys, MIX, "--output_dir", tmp_path, "--examples_per_shard", 7,
                          "--examples_per_block", 3, "--keep_pretokenized", "--compression",
                          "zstd")
  assert status == 0, err
  assert "cached 38 examples of 2 task(s)" in out and f"{BIG}/train: 30 examples" in err
  manifest = cache.read_manifest(tmp_path, MIX, "train")
  rates = {t["name"]: t["rate"] for t in manifest["tasks"]}
  big = cache.read_manifest(tmp_path, BIG, "train")
  assert big["examples_per_block"] == 3  # shards of whole blocks: 9 + 9 + 9 + 3 examples
  assert [(s["num_records"], s["num_examples"]) for s in big["shards"]] == [(3, 9)] * 3 + [(1, 3)]
  assert rates == {SMALL: 8.0, BIG: 12.0}  # min(examples, cap=12)
  mixture = pipeline.registry().get_mixture_or_task(MIX)
  assert rates == {t.name: mixture.get_rate(t) for t in mixture.tasks}  # what seqio computes
  for name in (SMALL, BIG):
    _assert_cached_equal(tmp_path, name, pipeline.load_task(name, "train"))
  batch = next(streaming.train_iterator(tmp_path, MIX, "train", LENGTHS, batch_size=4))
  assert batch[F.ENCODER_INPUT_TOKENS].shape == (4, 8)
  status, _, err = _cli(capsys, SMALL, "--output_dir", tmp_path)
  assert status == 0 and "already cached (8 examples)" in err


def test_default_cache_keeps_tokens_and_small_fields(tmp_path, capsys):
  status, _, err = _cli(capsys, SMALL, "--output_dir", tmp_path)
  assert status == 0, err
  want = [{k: v for k, v in ex.items() if not k.endswith("_pretokenized")}
          for ex in pipeline.load_task(SMALL, "train")]
  assert set(want[0]) == {F.INSTRUCTION, F.INPUTS, F.TARGETS, "task"}
  _assert_cached_equal(tmp_path, SMALL, want)


def test_unknown_task_and_unwritable_dir_are_one_line_errors(tmp_path, capsys):
  status, _, err = _cli(capsys, "no_such_task", "--output_dir", tmp_path)
  assert status == 1 and err.count("\n") == 1
  assert err.startswith("hint-jax: error: ValueError: unknown task or mixture 'no_such_task'")
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  status, _, err = _cli(capsys, SMALL, "--output_dir", blocker / "cache")
  assert status == 1 and err.count("\n") == 1 and "is not writable" in err
  assert not list(tmp_path.glob("**/*.array_record"))
