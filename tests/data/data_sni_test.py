"""Tests of the SNI reader, the Tk-Instruct/HINT strings, splits and the official metrics."""
import json

import pytest

from hint_jax.data import sni_examples, sni_format, sni_metrics, sni_reader

COPA = "task1393_superglue_copa_text_completion"
COPA_DEF = ('Definition: In this task, you are given a premise sentence, two possible options and a '
            'question word. If the question was cause you should select the option that is a '
            'possible cause of the premise sentence, and if the question word was effect you '
            'should find the option which is a possible effect of the premise sentence. Answer '
            'with "A" or "B".\n\n')
COPA_POS1 = (" Positive Example 1 -\nInput: The animal species became endangered. (A) Their "
             "habitat was destroyed. (B) Their predators went extinct., Question: cause.\n"
             " Output: A.\n\n")
COPA_POS2 = (" Positive Example 2 -\nInput: The bar closed. (A) It was crowded. (B) It was 3 AM., "
             "Question: cause.\n Output: B.\n\n")
COPA_INPUT = ("Now complete the following example -\nInput: The man fell unconscious. (A) The "
              "assailant struck the man in the head. (B) The assailant took the man's wallet., "
              "Question: cause.\nOutput: ")


def test_tk_instruct_strings_for_a_real_instance(shared_data):
  task = sni_reader.read_task(COPA, shared_data / "sni")
  text = task.instances[0].input
  assert sni_format.tk_instruct_input(task, text, num_pos=2) == (
      COPA_DEF + COPA_POS1 + COPA_POS2 + COPA_INPUT)
  assert sni_format.tk_instruct_input(task, text) == COPA_DEF + COPA_INPUT
  assert sni_format.instruction(task, 1) == COPA_DEF + COPA_POS1
  assert task.category == "cause_effect_classification" and task.is_english


def test_split_mimic_and_concat_records_split_the_tk_instruct_string(shared_data):
  cfg = sni_examples.SniConfig(num_pos=2, fmt="split_mimic", sni_dir=shared_data / "sni")
  task = sni_reader.read_task(COPA, cfg.sni_dir)
  hint = sni_examples.task_records(task, "test", cfg)[0]
  concat = sni_examples.task_records(
      task, "test", sni_examples.SniConfig(num_pos=2, fmt="concat", sni_dir=cfg.sni_dir))[0]
  assert hint["instruction"] == COPA_DEF + COPA_POS1 + COPA_POS2
  assert hint["inputs"] == COPA_INPUT
  assert concat["instruction"] == "" and concat["inputs"] == hint["instruction"] + hint["inputs"]
  assert hint["targets"] == "A" and hint["references"] == ["A"]
  assert hint["id"] == "task1393-3333a3c18e3744f899e65937f405445a"


def _write(tmp_path, name, data):
  (tmp_path / "tasks").mkdir(exist_ok=True)
  path = tmp_path / "tasks" / f"{name}.json"
  path.write_text(data if isinstance(data, str) else json.dumps(data))
  return path


GOOD = {"Definition": ["Say hi."], "Positive Examples": [{"input": "x", "output": "hi"}],
        "Instances": [{"id": "t-1", "input": "a", "output": ["hi", "hello"]}],
        "Categories": ["Misc Stuff"]}


def test_old_schema_string_definition_and_no_ids(tmp_path):
  old = dict(GOOD, Definition="Say hi", Instances=[{"input": "a", "output": "hi"}])
  _write(tmp_path, "task9_old", old)
  task = sni_reader.read_task("task9_old", tmp_path)
  assert task.definition == "Say hi" and task.category == "misc_stuff"
  assert task.instances == (sni_reader.Instance("task9_old-0", "a", ("hi",)),)
  assert sni_format.definition_block(task) == "Definition: Say hi.\n\n"


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "Definition"}), "missing field 'Definition'"),
    (json.dumps(dict(GOOD, Instances=[{"id": "i", "output": ["o"]}])),
     "Instances\\[0\\]: missing field 'input'"),
    (json.dumps(dict(GOOD, Definition=["  "])), "field 'Definition' is empty"),
])
def test_bad_task_files_name_file_and_field(tmp_path, content, message):
  path = _write(tmp_path, "task1_bad", content)
  with pytest.raises(sni_reader.SniFormatError, match=message) as info:
    sni_reader.read_task("task1_bad", tmp_path)
  assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unknown_task_name(tmp_path):
  with pytest.raises(sni_reader.SniFormatError, match="unknown SNI task 'task0_nope'"):
    sni_reader.read_task("task0_nope", tmp_path)


def test_non_english_tasks_are_filtered(tmp_path):
  _write(tmp_path, "task1_en", GOOD)
  _write(tmp_path, "task2_fr", dict(GOOD, Input_language=["French"]))
  (tmp_path / "splits" / "default").mkdir(parents=True)
  (tmp_path / "splits" / "default" / "test_tasks.txt").write_text("task1_en\ntask2_fr\n")
  cfg = sni_examples.SniConfig(sni_dir=tmp_path)
  assert {r["task"] for r in sni_examples.records("test", cfg)} == {"task1_en"}
  cfg_all = sni_examples.SniConfig(sni_dir=tmp_path, english_only=False)
  assert {r["task"] for r in sni_examples.records("test", cfg_all)} == {"task1_en", "task2_fr"}


def test_splits_are_deterministic_and_disjoint(shared_data):
  cfg = sni_examples.SniConfig(sni_dir=shared_data / "sni", dev_fraction=0.1)
  train, dev = sni_examples.task_names("train", cfg), sni_examples.task_names("validation", cfg)
  assert not set(train) & set(dev) and len(dev) == 15 and len(train) == 136
  assert dev == sni_examples.task_names("validation", cfg)
  task = sni_reader.read_task(train[0], cfg.sni_dir)
  a = sni_reader.select_instances(task, "train", seed=1)
  assert a == sni_reader.select_instances(task, "train", seed=1)
  assert a != sni_reader.select_instances(task, "train", seed=2)
  assert sni_reader.select_instances(task, "test", max_instances=3) == task.instances[:3]
  multi = sni_reader.Instance("i7", "x", ("a", "b", "c", "d"))
  assert len({sni_reader.choose_target(multi, s) for s in range(20)}) > 1
  assert sni_reader.choose_target(multi, 5) == sni_reader.choose_target(multi, 5)


def test_metric_values_equal_hand_computed_ones():
  # EM: punctuation and case ignored, articles kept, max over references.
  assert sni_metrics.normalize_answer("  Hello,  World! ") == "hello world"
  assert sni_metrics.exact_match("The cat.", "the cat") and not sni_metrics.exact_match("a cat",
                                                                                         "cat")
  # ROUGE-L with stemming: pred [cat run fast], ref [the cat run fast]: P=1, R=3/4, F=6/7.
  assert sni_metrics.rouge_l("cats running fast", "the cat runs fast") == pytest.approx(6 / 7)
  result = sni_metrics.evaluate(
      predictions=["The cat.", "cats running fast", "no"],
      references=[["dog", "the cat"], ["the cat runs fast"], ["yes"]],
      tasks=["t1", "t1", "t2"], categories=["Cat A", "Cat A", "Cat  B"])
  assert result == {
      "exact_match": round(100 / 3, 4), "rougeL": round(100 * (1 + 6 / 7) / 3, 4),
      "exact_match_for_cat_a": 50.0, "rougeL_for_cat_a": round(100 * (1 + 6 / 7) / 2, 4),
      "exact_match_for_cat_b": 0.0, "rougeL_for_cat_b": 0.0,
      "exact_match_for_t1": 50.0, "rougeL_for_t1": round(100 * (1 + 6 / 7) / 2, 4),
      "exact_match_for_t2": 0.0, "rougeL_for_t2": 0.0}


def test_metric_input_errors():
  with pytest.raises(ValueError, match="# of predictions 1 doesn't match # of references 2"):
    sni_metrics.compute_metrics(["a"], [["a"], ["b"]])
  with pytest.raises(ValueError, match="non-empty list"):
    sni_metrics.compute_metrics(["a"], ["a"])
