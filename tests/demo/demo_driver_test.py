"""The demo driver: a micro end-to-end run (report, plot, table) and its building blocks."""
import dataclasses
import json

import hint_jax_tasks  # noqa: F401  (registers synthetic_concat)
import pytest

from hint_jax.data import features as F
from hint_jax.data import pipeline, synthetic
from hint_jax.data import vocab as vocab_lib
from hint_jax.run import demo, demo_report

MICRO = dataclasses.replace(
    demo.PRESETS["tiny"], d_model=16, num_heads=2, d_ff=32, adapter_size=4, prefix_length=2,
    batch_size=8, pretrain_steps=2, finetune_steps=3, pretrain_texts=40, eval_per_task=1,
    sni_tasks=2, sni_per_task=1)


def test_parse_args_preset_overrides_and_env(monkeypatch):
  cfg, out, preset = demo.parse_args(["--preset", "tiny", "--finetune_steps", "7",
                                      "--learning_rate", "0.01", "--out", "/tmp/x"])
  assert (preset, out) == ("tiny", "/tmp/x")
  assert cfg == dataclasses.replace(demo.PRESETS["tiny"], finetune_steps=7, learning_rate=0.01)
  monkeypatch.setenv("HINT_DEMO_PRESET", "tiny")
  assert demo.parse_args([])[0] == demo.PRESETS["tiny"]
  with pytest.raises(SystemExit):
    demo.parse_args(["--preset", "huge"])


def test_init_from_pretraining_choices():
  assert demo.PRESETS["demo"].init_from_pretraining == "hypernet"
  assert demo.parse_args(["--init_from_pretraining", "all"])[0].init_from_pretraining == "all"
  assert set(demo.INITS) == {"hypernet", "all", "none"}
  assert all(set(v) == set(demo_report.MODELS) for v in demo.INITS.values())
  with pytest.raises(SystemExit):
    demo.parse_args(["--init_from_pretraining", "backbone"])


def test_concat_text_matches_registered_synthetic_concat_task():
  record = {F.INSTRUCTION: "Reverse the words.", F.INPUTS: "Input: cat dog",
            F.TARGETS: "dog cat", "task": "reverse_words"}
  (concat,) = demo.as_concat([record], "synthetic")
  assert concat[F.INPUTS] == "Reverse the words. Input: cat dog"
  assert concat[F.INSTRUCTION] == "" and concat[F.TARGETS] == "dog cat"
  (sni,) = demo.as_concat([{**record, F.INSTRUCTION: "Definition: x.\n\n"}], "sni")
  assert sni[F.INPUTS] == "Definition: x.\n\nInput: cat dog"
  ex = next(synthetic.generate("train"))
  assert demo.as_concat([ex], "synthetic")[0][F.INPUTS] == pipeline.load_task(
      "synthetic_concat", "train")[0]["inputs_pretokenized"]


def test_tokenize_appends_eos_and_keeps_strings():
  vocab = vocab_lib.get_vocabulary()
  (ex,) = demo.tokenize([{F.INSTRUCTION: "Count the words.", F.INPUTS: "cat dog",
                          F.TARGETS: "2", "task": "count_words"}], vocab)
  assert ex[F.INPUTS].tolist() == vocab.encode("cat dog") + [F.EOS_ID]
  assert ex[F.TARGETS][-1] == F.EOS_ID and ex["task"] == "count_words"


def test_other_instructions_never_give_a_task_its_own():
  records = list(synthetic.generate("heldout_task", 0, 3))
  own = {r["task"]: {x[F.INSTRUCTION] for x in records if x["task"] == r["task"]}
         for r in records}
  other = demo.other_instructions(records, seed=0)
  assert len(other) == len(records)
  for r, text in zip(records, other):
    assert text not in own[r["task"]]
  by_task = {}
  for r, text in zip(records, other):
    by_task.setdefault(r["task"], set()).add(text)
  assert all(len(v) == 1 for v in by_task.values())


def test_flops_hint_cheaper_for_long_shared_instructions():
  cfgs = demo.model_configs(demo.PRESETS["demo"])
  vocab = vocab_lib.get_vocabulary()
  long = "Definition: " + " ".join(["Read the sentence and answer the question."] * 6)
  records = [{F.INSTRUCTION: long, F.INPUTS: f"input number {i}", F.TARGETS: "yes", "task": "t"}
             for i in range(20)]
  flops = demo.flops_per_example(cfgs, records, vocab, "sni")
  assert 0 < flops["hint"] < flops["concat"]
  one = demo.flops_per_example(cfgs, records[:1], vocab, "sni")
  assert one["hint"] > flops["hint"]  # the per-task cost is amortised over fewer examples
  assert one["concat"] == pytest.approx(flops["concat"], rel=0.05)


@pytest.mark.slow
def test_micro_demo_end_to_end(tmp_path, capsys):
  results = demo.run(MICRO, str(tmp_path), "micro")
  printed = capsys.readouterr().out
  for phase in range(1, 7):
    assert f"=== {phase}/6 " in printed
  assert "| hint |" in printed and "| concat |" in printed
  for name in ("report.md", "results.json"):
    assert (tmp_path / name).stat().st_size > 0
  assert (tmp_path / "score_vs_flops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  saved = json.loads((tmp_path / "results.json").read_text())
  assert set(saved["models"]) == set(demo.MODELS)
  assert saved["models"]["hint"]["true"] == results["models"]["hint"]["true"]
  for model in demo.MODELS:
    r = saved["models"][model]
    assert set(r["true"]) == set(demo_report.SPLITS) == set(r["other"])
    assert all(0.0 <= v <= 100.0 for c in ("true", "other") for v in r[c].values())
    assert r["examples_per_s"] > 0 and min(r["flops"].values()) > 0
    assert r["instruction_gain"] == pytest.approx(
        sum(r["true"][s] - r["other"][s] for s in demo.HELDOUT) / 2)
  report = (tmp_path / "report.md").read_text()
  assert "## Instruction-reliance controls" in report and "score_vs_flops.png" in report
  assert saved["config"]["finetune_steps"] == MICRO.finetune_steps
