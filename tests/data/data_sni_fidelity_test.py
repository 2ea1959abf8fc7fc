"""The SNI formats exactly as the original HINT builds them, on real SNI instances.

Expected strings are written by hand from allenai/hyper-task-descriptions `ni_tasks/ni_registry.py`
(`convert_format`: bare stripped definition | raw input; `convert_format_pack_positive_examples`:
example blocks prepended to "Definition: <def>", skipped past 1024 tokens; `hyper_mimic_baseline`:
"Definition: <def>(.)\\n\\n" | "Now complete the following example -\\nInput: <x>(.)\\nOutput: ").
"""
import pytest

from hint_jax.data import sni_examples, sni_format, sni_reader

CAPITAL = "task1146_country_capital"
CAPITAL_DEF = ("In this task, you are given a country name and you need to return the capital city "
               "of the given country")
HYPERNYM = "task1582_bless_hypernym_generation"
HYPERNYM_DEF = ("Given a concept word, generate a hypernym for it. A hypernym is a superordinate, "
                "i.e., a word with a broad meaning constituting a category, that generalizes "
                "another word. For example, color is a hypernym of red.")
REVIEWS = "task672_amazon_and_yelp_summarization_dataset_summarization"


def _first(shared_data, name, **kw):
  cfg = sni_examples.SniConfig(sni_dir=shared_data / "sni", **kw)
  task = sni_reader.read_task(name, cfg.sni_dir)
  return sni_examples.task_records(task, "train", cfg)[0]


def test_hint_def_is_the_bare_definition_and_the_raw_input(shared_data):
  r = _first(shared_data, CAPITAL)
  assert r["instruction"] == CAPITAL_DEF  # no "Definition:", no period added
  assert r["inputs"] == "Norway"
  assert r["targets"] == "Oslo" and r["id"] == "task1146-b31ad342926f45bda7f342f937f01742"
  # the definition is stripped for Def (this task file's definition ends in a space)
  assert _first(shared_data, HYPERNYM)["instruction"] == HYPERNYM_DEF
  assert _first(shared_data, HYPERNYM)["inputs"] == "wrench"


def test_hint_def_2pos_prepends_examples_in_reverse_before_the_definition(shared_data):
  r = _first(shared_data, CAPITAL, num_pos=2)
  assert r["instruction"] == (
      " Positive Example 2 -\nInput: India.\n Output: New Delhi.\n"
      " Positive Example 1 -\nInput: United States.\n Output: Washington.\n"
      "Definition: " + CAPITAL_DEF)
  assert r["inputs"] == "Norway"
  one = _first(shared_data, HYPERNYM, num_pos=1)
  # Def+kPos keeps the definition unstripped (trailing space) and adds no period or blank line.
  assert one["instruction"] == (" Positive Example 1 -\nInput: knife.\n Output: weapon.\n"
                                "Definition: " + HYPERNYM_DEF + " ")


def test_hint_drops_examples_past_the_instruction_budget(shared_data, monkeypatch):
  monkeypatch.delenv(sni_examples.VOCAB_ENV_VAR, raising=False)
  kept = _first(shared_data, REVIEWS, num_pos=2)["instruction"]
  # Def + both examples is ~1,465 tokens with the committed vocabulary: the second one is skipped.
  assert kept.startswith(" Positive Example 1 -\nInput: Review_1: The only thing I would like")
  assert "Positive Example 2" not in kept and kept.endswith("same consecutive words or phrases "
                                                            "given in the reviews.")
  both = _first(shared_data, REVIEWS, num_pos=2, instruction_budget=None)["instruction"]
  assert both.startswith(" Positive Example 2 -\n") and " Positive Example 1 -\n" in both


def test_budget_skips_a_long_example_but_keeps_a_later_short_one():
  ex = (sni_reader.Example("x" * 50, "long"), sni_reader.Example("y", "short"))
  task = sni_reader.SniTask("task0_t", "Do it", ex, (), "misc", True)
  text = sni_format.hint_instruction(task, 2, len, budget=70)
  assert text == " Positive Example 2 -\nInput: y.\n Output: short.\nDefinition: Do it"
  assert sni_format.hint_instruction(task, 0, len, budget=1) == "Do it"


def test_split_mimic_def_is_the_originals_ablation(shared_data):
  r = _first(shared_data, CAPITAL, fmt="split_mimic")
  assert r["instruction"] == "Definition: " + CAPITAL_DEF + ".\n\n"
  assert r["inputs"] == "Now complete the following example -\nInput: Norway.\nOutput: "
  concat = _first(shared_data, CAPITAL, fmt="concat")
  assert concat["instruction"] == "" and concat["inputs"] == r["instruction"] + r["inputs"]


def test_dev_fraction_zero_trains_on_every_train_task(shared_data):
  cfg = sni_examples.SniConfig(sni_dir=shared_data / "sni")
  assert cfg.dev_fraction == 0.0 and sni_examples.task_names("validation", cfg) == []
  assert sni_examples.task_names("train", cfg) == sni_reader.split_task_names("train", cfg.sni_dir)
  with pytest.raises(ValueError, match="dev_fraction"):
    sni_examples.SniConfig(dev_fraction=1.0)
  with pytest.raises(ValueError, match="split_mimic"):
    sni_examples.SniConfig(fmt="mimic")


def test_both_gives_the_definition_to_the_hypernetwork_and_tk_instruct_to_the_encoder(
    shared_data):
  r = _first(shared_data, CAPITAL, fmt="both", num_pos=1)
  assert r["instruction"] == CAPITAL_DEF
  assert r["inputs"] == ("Definition: " + CAPITAL_DEF + ".\n\n Positive Example 1 -\nInput: United "
                         "States.\n Output: Washington.\n\nNow complete the following example -\n"
                         "Input: Norway.\nOutput:")
