"""P3 few-shot records (the original's t0_train_{k}_shot): hand-written expected strings on real
p3_sample records, the shot draw and the 960-token pruning."""
import os
import pathlib

import pytest

from hint_jax.data import p3, p3_few_shot

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "p3_sample"
NAME = "glue_mrpc_same_thing"
Q = "Do the following two sentences mean the same thing?\n"
AMROZI = (Q + "Amrozi accused his brother , whom he called \" the witness \" , of deliberately "
          "distorting his evidence .\nReferring to him as only \" the witness \" , Amrozi accused "
          "his brother of deliberately distorting his evidence .\n")
YUCAIPA = (Q + "Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 "
           "billion .\nYucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway "
           "for $ 1.8 billion in 1998 .\n")
CARGO = (Q + "They had published an advertisement on the Internet on June 10 , offering the cargo "
         "for sale , he added .\nOn June 10 , the ship 's owners had published an advertisement "
         "on the Internet , offering the explosives for sale .\n")
TEMPLATE = Q + "[MASK]\n[MASK]"  # the original's edited prompt of this template

pytestmark = pytest.mark.usefixtures("shared_data")  # fails loudly when ../shared/data is missing


@pytest.fixture()
def real():
  """The first three records of the real template, as `p3.records` yields them (hint format)."""
  lines = p3.read_template(NAME, SHARED)[:3]
  assert [r["inputs"] for r in lines] == [AMROZI, YUCAIPA, CARGO]  # the sample itself
  return [{"instruction": TEMPLATE, "inputs": r["inputs"], "targets": r["targets"], "task": NAME}
          for r in lines]


def test_shots_text_is_the_originals_string(real):
  assert p3_few_shot.shots_text(real[1:]) == (
      YUCAIPA + " Output: no\n\n" + CARGO + " Output: yes\n\n")


def test_hint_puts_the_shots_before_the_template(real):
  out = p3_few_shot.format_record(real[0], real[1:2], "hint")
  assert out == {
      "instruction": (
          "Do the following two sentences mean the same thing?\n"
          "Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 "
          "billion .\nYucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway "
          "for $ 1.8 billion in 1998 .\n Output: no\n\n"
          " Definition: Do the following two sentences mean the same thing?\n[MASK]\n[MASK]"),
      "inputs": (
          "Do the following two sentences mean the same thing?\n"
          "Amrozi accused his brother , whom he called \" the witness \" , of deliberately "
          "distorting his evidence .\nReferring to him as only \" the witness \" , Amrozi accused "
          "his brother of deliberately distorting his evidence ."),
      "targets": "yes", "task": NAME}


def test_concat_and_both_put_the_shots_in_the_input(real):
  expected_inputs = (
      "Do the following two sentences mean the same thing?\n"
      "Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 "
      "billion .\nYucaipa bought Dominick 's in 1995 for $ 693 million and sold it to Safeway "
      "for $ 1.8 billion in 1998 .\n Output: no\n\n"
      "Do the following two sentences mean the same thing?\n"
      "They had published an advertisement on the Internet on June 10 , offering the cargo "
      "for sale , he added .\nOn June 10 , the ship 's owners had published an advertisement "
      "on the Internet , offering the explosives for sale .\n Output: yes\n\n"
      " Definition: Do the following two sentences mean the same thing?\n"
      "Amrozi accused his brother , whom he called \" the witness \" , of deliberately "
      "distorting his evidence .\nReferring to him as only \" the witness \" , Amrozi accused "
      "his brother of deliberately distorting his evidence .")
  concat = p3_few_shot.format_record({**real[0], "instruction": ""}, real[1:], "concat")
  assert concat == {"instruction": "", "inputs": expected_inputs, "targets": "yes", "task": NAME}
  both = p3_few_shot.format_record(real[0], real[1:], "both")
  assert both == {"instruction": TEMPLATE, "inputs": expected_inputs, "targets": "yes",
                  "task": NAME}


def test_no_shot_left_keeps_the_definition_separator(real):
  assert p3_few_shot.format_record(real[0], [], "hint")["instruction"] == (
      " Definition: " + TEMPLATE)
  assert p3_few_shot.format_record(real[0], [], "concat")["inputs"] == (
      "Definition: " + AMROZI.strip())


def test_prune_keeps_the_leading_shots_that_fit():
  count = lambda text: len(text.split())
  shots = [{"inputs": "a b c", "targets": "d"}, {"inputs": "e f", "targets": "g"},
           {"inputs": "h", "targets": "i"}]
  assert p3_few_shot.prune(shots, "x y", count, 8) == shots[:1]   # 4 <= 6 < 4 + 3
  assert p3_few_shot.prune(shots, "x y", count, 9) == shots[:2]   # 4 + 3 <= 7
  assert p3_few_shot.prune(shots, "x y", count, 11) == shots      # 4 + 3 + 2 <= 9
  assert p3_few_shot.prune(shots, "x y", count, 5) == []
  assert p3_few_shot.prune(shots, "x y", count, None) == shots


@pytest.fixture()
def p3_dir(tmp_path):
  (tmp_path / "templates").mkdir()
  for name in (NAME, "ag_news_classify"):
    os.symlink(SHARED / "templates" / f"{name}.jsonl", tmp_path / "templates" / f"{name}.jsonl")
  return tmp_path


def _cfg(p3_dir, **kw):
  return p3_few_shot.FewShotConfig(p3_config=p3.P3Config(p3_dir=p3_dir), **kw)


@pytest.mark.parametrize("fmt", p3_few_shot.FORMATS)
def test_records_draw_other_examples_of_the_same_template(p3_dir, fmt):
  base = list(p3.records("train", p3.P3Config(p3_dir=p3_dir)))
  cfg = _cfg(p3_dir, num_shots=2, fmt=fmt, max_input_length=None)
  train = list(p3_few_shot.records("train", cfg))
  assert len(train) == len(base) == 2 * 45
  for r, own in zip(train, base):
    shown = r["instruction"] if fmt == "hint" else r["inputs"]
    shots = [b for b in base if b["inputs"] + " Output: " + b["targets"] + "\n\n" in shown]
    assert len(shots) == 2 and own not in shots and {b["task"] for b in shots} == {own["task"]}
    assert shown.count(" Output: ") == 2 and shown.count(" Definition: ") == 1
    assert r["instruction"] == {"hint": shown, "concat": "", "both": own["instruction"]}[fmt]
    assert r["inputs"].endswith(own["inputs"].strip()) and r["targets"] == own["targets"]
  assert list(p3_few_shot.records("train", cfg)) == train  # seeded


def test_validation_shots_come_from_train(p3_dir):
  train = list(p3.records("train", p3.P3Config(p3_dir=p3_dir)))
  valid = list(p3.records("validation", p3.P3Config(p3_dir=p3_dir)))
  cfg = _cfg(p3_dir, num_shots=5, fmt="concat", max_input_length=None)
  out = list(p3_few_shot.records("validation", cfg))
  assert len(out) == len(valid) == 2 * 5
  for r in out:
    assert sum(t["inputs"] + " Output: " in r["inputs"] for t in train) == 5
    assert not any(v["inputs"] + " Output: " in r["inputs"] for v in valid)


def test_token_budget_prunes_shots(p3_dir):
  long = list(p3_few_shot.records("train", _cfg(p3_dir, num_shots=5, fmt="hint")))
  tight = list(p3_few_shot.records("train", _cfg(p3_dir, num_shots=5, fmt="hint",
                                                 max_input_length=150)))
  assert all(r["instruction"].count(" Output: ") == 5 for r in long)  # short prompts fit 960
  counts = [r["instruction"].count(" Output: ") for r in tight]
  assert min(counts) < 5 and [r["inputs"] for r in tight] == [r["inputs"] for r in long]


def test_bad_config_is_refused():
  with pytest.raises(ValueError, match="unknown P3 few-shot format"):
    p3_few_shot.FewShotConfig(fmt="tk")
  with pytest.raises(ValueError, match="num_shots must be >= 1"):
    p3_few_shot.FewShotConfig(num_shots=0)
