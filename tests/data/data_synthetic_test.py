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


# ---- Def + k Pos formats ---------------------------------------------------------------------

def _fields(records, *names):
  return [tuple(r[n] for n in names) for r in records]


@pytest.mark.parametrize("split", ["train", "heldout_paraphrase", "heldout_task"])
def test_every_format_gives_the_same_examples(split):
  base = list(synthetic.generate(split, seed=1, examples_per_task=4))
  for num_pos in synthetic.NUM_POS:
    for fmt in synthetic.FORMATS:
      other = list(synthetic.generate(split, 1, 4, num_pos=num_pos, fmt=fmt))
      assert _fields(other, "task", "targets") == _fields(base, "task", "targets")
  def2pos = list(synthetic.generate(split, 1, 4, num_pos=2))
  assert _fields(def2pos, "inputs") == _fields(base, "inputs")  # HINT's encoder text is unchanged
  for r, d in zip(base, def2pos):
    assert d["instruction"].endswith("\nDefinition: " + r["instruction"])


def test_def_format_is_the_registered_one():
  hint = list(synthetic.generate("heldout_task", 0, 3, num_pos=0, fmt="hint"))
  concat = list(synthetic.generate("heldout_task", 0, 3, num_pos=0, fmt="concat"))
  split = list(synthetic.generate("heldout_task", 0, 3, num_pos=0, fmt="split"))
  assert hint == split
  for h, c in zip(hint, concat):
    assert h["instruction"] in {p for t in synthetic.all_tasks() for p in t.paraphrases()}
    assert c["instruction"] == "" and c["inputs"] == f"{h['instruction']} {h['inputs']}"


def test_demonstrations_are_fixed_per_task_correct_and_never_an_input():
  tasks = synthetic.all_tasks()
  for task in tasks:
    demos = synthetic.demonstrations(task, seed=0)
    assert len(demos) == synthetic.MAX_POS == 2 and len({d.input for d in demos}) == 2
    assert synthetic.demonstrations(task, 0, 1) == demos[:1]
    for d in demos:
      assert task.apply([int(x) if task.kind == "numbers" else x for x in d.input.split()]) \
          == d.output
  assert synthetic.demonstrations(tasks[0], 0) != synthetic.demonstrations(tasks[0], 1)
  assert synthetic.demonstrations(tasks[0], 0) != synthetic.demonstrations(tasks[1], 0)
  shown = {(t.name, d.input) for t in tasks for d in synthetic.demonstrations(t, 0)}
  for split in synthetic.SPLITS:
    records = list(synthetic.generate(split, 0, 200, num_pos=2))
    used = {(r["task"], r["inputs"].removeprefix(synthetic.INPUT_PREFIX)) for r in records}
    assert not used & shown
    by_task = {}
    for r in records:  # one demonstration pair per task, whatever the paraphrase
      by_task.setdefault(r["task"], set()).add(r["instruction"].split("Definition: ")[0])
    assert all(len(v) == 1 for v in by_task.values())
  with pytest.raises(ValueError, match="num_pos must be in"):
    list(synthetic.generate("train", num_pos=3))
  with pytest.raises(ValueError, match="unknown synthetic format 'tk'"):
    list(synthetic.generate("train", fmt="tk"))


def test_def2pos_strings_are_the_sni_hint_and_tk_instruct_layouts():
  hint = next(synthetic.generate("heldout_task", 0, 1, num_pos=2, fmt="hint"))
  concat = next(synthetic.generate("heldout_task", 0, 1, num_pos=2, fmt="concat"))
  split = next(synthetic.generate("heldout_task", 0, 1, num_pos=2, fmt="split"))
  plain = next(synthetic.generate("heldout_task", 0, 1))
  task = {t.name: t for t in synthetic.all_tasks()}[plain["task"]]
  (in1, out1), (in2, out2) = [(d.input, d.output) for d in synthetic.demonstrations(task, 0)]
  items = plain["inputs"].removeprefix(synthetic.INPUT_PREFIX)
  definition = plain["instruction"]  # a paraphrase ending in "."
  # HINT (sni_format.hint_instruction): example blocks prepended one by one to "Definition: ".
  assert hint["instruction"] == (f" Positive Example 2 -\nInput: {in2}.\n Output: {out2}.\n"
                                 f" Positive Example 1 -\nInput: {in1}.\n Output: {out1}.\n"
                                 f"Definition: {definition}")
  assert hint["inputs"] == plain["inputs"]
  # Baseline (Tk-Instruct, DataCollatorForNI): everything in the encoder input.
  assert concat["instruction"] == ""
  assert concat["inputs"] == (f"Definition: {definition}\n\n"
                              f" Positive Example 1 -\nInput: {in1}.\n Output: {out1}.\n\n"
                              f" Positive Example 2 -\nInput: {in2}.\n Output: {out2}.\n\n"
                              f"Now complete the following example -\nInput: {items}.\nOutput: ")
  template = synthetic.concat_template(2)
  assert template.format(instruction=split["instruction"], input=split["inputs"]) \
      == concat["inputs"]
  assert split["inputs"].startswith("Now complete the following example")


def test_registered_def2pos_tasks_hold_the_generated_strings():
  import hint_jax_tasks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  from hint_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  for num_pos, name in ((0, "synthetic"), (2, "synthetic_def_2pos")):
    for fmt in ("hint", "concat"):
      got = pipeline.load_task(f"{name}_{fmt}", "heldout_task")
      want = list(synthetic.generate("heldout_task", num_pos=num_pos, fmt=fmt))
      assert [(g["instruction_pretokenized"], g["inputs_pretokenized"]) for g in got] == [
          (w["instruction"], w["inputs"]) for w in want]
