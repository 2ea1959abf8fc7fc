"""Tests of the synthetic instruction suite: size, determinism, split disjointness, semantics."""
import collections

import pytest

from hint_jax.data import synthetic


def test_at_least_twenty_tasks_with_paraphrases():
  tasks = synthetic.all_tasks()
  assert len(tasks) >= 20
  assert all(len(t.paraphrases()) >= 3 for t in tasks)
  assert len({p for t in tasks for p in t.paraphrases()}) == sum(len(t.paraphrases())
                                                                 for t in tasks)


def test_same_seed_same_examples_other_seed_differs():
  a = list(synthetic.generate("train", seed=3, examples_per_task=5))
  b = list(synthetic.generate("train", seed=3, examples_per_task=5))
  c = list(synthetic.generate("train", seed=4, examples_per_task=5))
  assert a == b
  assert a != c


def _pairs(split):
  return {(ex["task"], ex["instruction"]) for ex in synthetic.generate(split)}


def test_splits_are_disjoint():
  train, para, held = _pairs("train"), _pairs("heldout_paraphrase"), _pairs("heldout_task")
  assert not {i for _, i in train} & {i for _, i in para}
  assert not {t for t, _ in train} & {t for t, _ in held}
  assert {t for t, _ in para} == {t for t, _ in train}
  assert {t for t, _ in held} == set(synthetic.HELDOUT_TASKS)
  train_inputs = {(ex["task"], ex["inputs"]) for ex in synthetic.generate("train")}
  valid_inputs = {(ex["task"], ex["inputs"]) for ex in synthetic.generate("validation")}
  assert not train_inputs & valid_inputs
  assert _pairs("validation") <= train


def test_heldout_tasks_share_operation_and_kind_with_seen_tasks():
  seen = synthetic.tasks_for_split("train")
  for task in synthetic.tasks_for_split("heldout_task"):
    assert any(t.op == task.op for t in seen) and any(t.kind == task.kind for t in seen)


@pytest.mark.parametrize("name, items, expected", [
    ("reverse_words", ["cat", "dog", "egg"], "egg dog cat"),
    ("second_words", ["cat", "dog", "egg"], "dog"),
    ("sort_asc_numbers", [10, 2, 7], "2 7 10"),
    ("sort_desc_words", ["cat", "apple", "dog"], "dog cat apple"),
    ("count_numbers", [4, 5, 6, 7], "4"),
    ("double_words", ["sun", "cup"], "sun sun cup cup"),
    ("add_one_numbers", [1, 19], "2 20"),
    ("drop_last_numbers", [3, 1, 2], "3 1"),
    ("max_numbers", [3, 17, 2], "17"),
])
def test_operations(name, items, expected):
  task = {t.name: t for t in synthetic.all_tasks()}[name]
  assert task.apply(items) == expected


def test_examples_are_short_and_balanced():
  examples = list(synthetic.generate("train"))
  per_task = collections.Counter(ex["task"] for ex in examples)
  assert set(per_task.values()) == {synthetic.EXAMPLES_PER_TASK["train"]}
  assert all(ex["inputs"].startswith(synthetic.INPUT_PREFIX) for ex in examples)
  items = [ex["inputs"].removeprefix(synthetic.INPUT_PREFIX).split() for ex in examples]
  assert max(len(x) for x in items) <= synthetic.MAX_ITEMS
  assert max(len(ex["targets"].split()) for ex in examples) <= 2 * synthetic.MAX_ITEMS


def test_exact_match_metric():
  assert synthetic.exact_match(["a b", "c"], ["a b ", "d"]) == {"exact_match": 50.0}
  with pytest.raises(ValueError, match="2 targets but 1 predictions"):
    synthetic.exact_match(["a", "b"], ["a"])
  with pytest.raises(ValueError, match="unknown synthetic split 'dev'"):
    list(synthetic.generate("dev"))
