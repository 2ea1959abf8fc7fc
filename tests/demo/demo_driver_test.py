"""The demo driver: a micro end-to-end run (report, plot, table) and its building blocks."""
import dataclasses
import json

import hint_jax_tasks  # noqa: F401  (registers synthetic_concat)
import numpy as np
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


def test_finetune_sources_mix_def_and_def2pos_and_fit_the_lengths():
  cfg = dataclasses.replace(MICRO, synthetic_per_task=40, sni_fraction=0.0)
  vocab = vocab_lib.get_vocabulary()
  sources = demo.finetune_sources(cfg, vocab)
  for model, source in sources.items():
    assert source.task_names == ("synthetic_def_train", "synthetic_def_2pos_train")
    total = sum(source.quotas)
    assert total == len(synthetic.tasks_for_split("train")) * cfg.synthetic_per_task
    assert 0.4 < source.quotas[1] / total < 0.6  # pos_fraction 0.5
    for examples in source.examples:
      for ex in examples:  # nothing is cut: every synthetic example fits the demo's lengths
        for name in (F.INSTRUCTION, F.INPUTS, F.TARGETS):
          assert len(ex[name]) <= demo.LENGTHS[model][name]
  def text(ex, name):
    return vocab.decode(ex[name][:-1].tolist())
  hint_def2pos, concat_def2pos = sources["hint"].examples[1], sources["concat"].examples[1]
  assert all(text(ex, F.INSTRUCTION).startswith("Positive Example 2 -") for ex in hint_def2pos)
  assert all(len(ex[F.INSTRUCTION]) == 1 and text(ex, F.INPUTS).startswith("Definition: ")
             for ex in concat_def2pos)
  assert all(len(ex[F.INSTRUCTION]) < 16 for ex in sources["hint"].examples[0])  # Def
  # the same examples, split between the formats in the same way for both models
  assert [text(ex, F.TARGETS) for ex in hint_def2pos] == [
      text(ex, F.TARGETS) for ex in concat_def2pos]
  none = demo.finetune_sources(dataclasses.replace(cfg, pos_fraction=0.0), vocab)
  assert none["hint"].task_names == ("synthetic_def_train",)


def test_eval_records_per_model_and_format_give_the_registered_texts():
  records = demo.all_eval_records(MICRO)
  assert set(records) == set(demo.MODELS)
  assert all(set(v) == set(demo.FORMATS) for v in records.values())
  assert "sni_test" in records["hint"]["def"] and "sni_test" not in records["hint"]["def_2pos"]
  for name, num_pos in demo.FORMATS.items():
    for split in demo.HELDOUT:
      hint, split_recs = records["hint"][name][split], records["concat"][name][split]
      per_task = len(hint) // len(synthetic.tasks_for_split(split))
      want = {fmt: list(synthetic.generate(split, MICRO.seed, per_task, num_pos=num_pos,
                                           fmt=fmt)) for fmt in ("hint", "concat")}
      assert hint == want["hint"]
      concat = demo.as_concat(split_recs, "synthetic", synthetic.concat_template(num_pos))
      assert [r[F.INPUTS] for r in concat] == [r[F.INPUTS] for r in want["concat"]]


def test_flops_def2pos_costs_hint_less_extra_than_concat():
  cfgs = demo.model_configs(demo.PRESETS["demo"])
  vocab = vocab_lib.get_vocabulary()
  flops = {}
  for name, k in demo.FORMATS.items():
    hint = list(synthetic.generate("heldout_task", 0, 40, num_pos=k))
    concat = list(synthetic.generate("heldout_task", 0, 40, num_pos=k, fmt="concat"))
    flops[name] = demo.flops_per_example(cfgs, hint, vocab, concat_records=concat)
  extra = {m: flops["def_2pos"][m] - flops["def"][m] for m in demo.MODELS}
  assert 0 < extra["hint"] < extra["concat"]
  assert flops["def_2pos"]["hint"] < flops["def_2pos"]["concat"]


@pytest.mark.slow
def test_micro_demo_end_to_end(tmp_path, capsys):
  results = demo.run(MICRO, str(tmp_path), "micro")
  printed = capsys.readouterr().out
  for phase in range(1, 7):
    assert f"=== {phase}/6 " in printed
  for model in demo.MODELS:
    for label in ("Def", "Def+2Pos"):
      assert f"| {model} | {label} |" in printed
  for name in ("report.md", "results.json"):
    assert (tmp_path / name).stat().st_size > 0
  assert (tmp_path / "score_vs_flops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  saved = json.loads((tmp_path / "results.json").read_text())
  assert set(saved["models"]) == set(demo.MODELS)
  assert saved["models"]["hint"]["def"]["true"] == results["models"]["hint"]["def"]["true"]
  for model in demo.MODELS:
    assert set(saved["models"][model]) == set(demo.FORMATS)
    for fmt, r in saved["models"][model].items():
      splits = set(demo_report.SPLITS) - ({"sni_test"} if fmt == "def_2pos" else set())
      assert set(r["true"]) == splits == set(r["other"])
      assert all(0.0 <= v <= 100.0 for c in ("true", "other") for v in r[c].values())
      assert r["examples_per_s"] > 0 and min(r["flops"].values()) > 0
      assert r["instruction_gain"] == pytest.approx(
          sum(r["true"][s] - r["other"][s] for s in demo.HELDOUT) / 2)
    # the worked examples cost the baseline more FLOPs per example than HINT
  flops = {m: {f: saved["models"][m][f]["flops"]["synthetic"] for f in demo.FORMATS}
           for m in demo.MODELS}
  assert (flops["hint"]["def_2pos"] - flops["hint"]["def"]
          < flops["concat"]["def_2pos"] - flops["concat"]["def"])
  report = (tmp_path / "report.md").read_text()
  assert "## Instruction-reliance controls" in report and "score_vs_flops.png" in report
  assert saved["config"]["finetune_steps"] == MICRO.finetune_steps


def test_same_seed_trains_bitwise_equal_weights(tmp_path):
  """The demo's numbers reproduce: two HINT fine-tunings with one seed (data order, init,
  dropout) give bitwise equal weights on the same machine; another seed does not."""
  cfg = dataclasses.replace(MICRO, synthetic_per_task=8, sni_fraction=0.0)
  vocab = vocab_lib.get_vocabulary()
  model_cfg = demo.model_configs(cfg)["hint"]

  def fit(seed, name):
    c = dataclasses.replace(cfg, seed=seed)
    return demo.train(c, model_cfg, demo.finetune_sources(c, vocab)["hint"], "hint", 3, 8,
                      str(tmp_path / name))[0]

  first, again, other = fit(0, "a"), fit(0, "b"), fit(1, "c")
  assert first.keys() == again.keys() == other.keys()
  assert all(np.array_equal(first[k], again[k]) for k in first)
  assert not all(np.array_equal(first[k], other[k]) for k in first)
