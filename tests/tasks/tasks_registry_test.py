"""Tests of the SeqIO registrations: names, idempotence, strings through SeqIO, pipelines."""
import importlib

import hint_jax_tasks as tasks
import numpy as np
import pytest
import seqio

from hint_jax.data import features as F
from hint_jax.data import pipeline, rank_classification

EXPECTED = {"sni_def_hint", "sni_def_1pos_hint", "sni_def_2pos_hint", "sni_def_concat",
            "sni_def_1pos_concat", "sni_def_2pos_concat", "p3_hint", "p3_concat",
            "p3_heldout_rank_classification", "p3_heldout_rank_classification_concat",
            "hyper_pretrain_text", "synthetic_hint", "synthetic_concat"}


def test_all_tasks_registered_and_reimport_is_harmless():
  assert EXPECTED <= set(seqio.TaskRegistry.names())
  for module in (tasks.sni, tasks.p3, tasks.pretrain, tasks.synthetic, tasks):
    importlib.reload(module)
  assert EXPECTED <= set(pipeline.available_names())
  for name in EXPECTED:
    assert set(seqio.get_mixture_or_task(name).output_features) == {
        F.INSTRUCTION, F.INPUTS, F.TARGETS}


def test_sni_strings_through_seqio():
  examples = pipeline.load_task("sni_def_2pos_split_mimic", "test")
  copa = next(e for e in examples if e["task"] == "task1393_superglue_copa_text_completion")
  assert copa["instruction_pretokenized"].startswith("Definition: In this task, you are given")
  assert copa["instruction_pretokenized"].endswith(" Output: B.\n\n")
  assert copa["inputs_pretokenized"] == (
      "Now complete the following example -\nInput: The man fell unconscious. (A) The assailant "
      "struck the man in the head. (B) The assailant took the man's wallet., Question: cause.\n"
      "Output: ")
  assert copa["references"] == ["A"] and copa["category"] == "cause_effect_classification"
  assert copa[F.TARGETS][-1] == F.EOS_ID and copa[F.INSTRUCTION][-1] == F.EOS_ID
  assert len(examples) == 4100


def test_sni_metric_fn_through_postprocess():
  task = seqio.get_mixture_or_task("sni_def_hint")
  example = {"references": [b"A", b"the cat"], "task": b"t1", "category": b"Cat X"}
  target = task.postprocess_fn(b"", example=example, is_target=True)
  result = task.metric_fns[0]([target], ["The cat!"])
  assert result["exact_match"] == 100.0 and result["rougeL_for_t1"] == 100.0
  assert result["exact_match_for_cat_x"] == 100.0


def test_synthetic_concat_puts_instruction_in_inputs():
  hint = pipeline.load_task("synthetic_hint", "heldout_task")[0]
  concat = pipeline.load_task("synthetic_concat", "heldout_task")[0]
  assert concat["instruction_pretokenized"] == ""
  np.testing.assert_array_equal(concat[F.INSTRUCTION], [F.EOS_ID])
  assert concat["inputs_pretokenized"] == (
      f"{hint['instruction_pretokenized']} {hint['inputs_pretokenized']}")
  assert hint["inputs_pretokenized"].startswith("Input: ")


def test_rank_eval_set_scores_to_accuracy():
  lengths = {F.INSTRUCTION: 128, F.INPUTS: 128, F.TARGETS: 8}
  evs = pipeline.rank_eval_set("p3_heldout_rank_classification", lengths, 64)
  rows = evs.examples
  assert len(rows) == sum(len(r["answer_choices"]) for r in pipeline.load_task(
      "p3_heldout_rank_classification", "test"))
  oracle = [float(r["choice_index"] == r["label"]) for r in rows]
  assert rank_classification.accuracy(oracle, rows)["accuracy"] == 100.0
  first = evs.batches[0]
  assert first[F.DECODER_TARGET_TOKENS].shape == (64, 8)
  with pytest.raises(ValueError, match="not a rank-classification task"):
    pipeline.rank_eval_set("synthetic_hint", lengths, 8, split="heldout_task")


def test_p3_and_pretraining_pipelines_produce_batches():
  lengths = {F.INSTRUCTION: 64, F.INPUTS: 64, F.TARGETS: 64}
  p3_batch = next(pipeline.train_iterator("p3_hint", "validation", lengths, 8, seed=0))
  assert p3_batch[F.HYPER_ENCODER_INPUT_TOKENS].shape == (8, 64)
  it = pipeline.train_iterator("hyper_pretrain_text", "validation", lengths, 4, seed=0)
  batch = next(it)
  assert batch[F.ENCODER_INPUT_TOKENS].shape == (4, 64)
  assert it.stats.examples == 4


def test_mixture_quotas_follow_rates():
  from hint_jax_tasks import common  # pylint: disable=g-import-not-at-top
  common.add_mixture("test_synthetic_3_to_1", [("synthetic_hint", 3.0), ("synthetic_concat", 1.0)])
  source = pipeline.load_source("test_synthetic_3_to_1", "heldout_task")
  assert source.task_names == ("synthetic_concat", "synthetic_hint")  # seqio sorts by name
  assert source.quotas == (80, 240)  # 320 examples in all, split 1:3
  order = pipeline.epoch_order(source, seed=0, epoch=0)
  assert np.bincount(order[:, 0]).tolist() == [80, 240]
  assert {"sni_p3_hint", "sni_p3_concat"} <= set(seqio.MixtureRegistry.names())
  with pytest.raises(ValueError, match="unknown task or mixture 'nope'; available: .*sni_p3_hint"):
    pipeline.load_source("nope", "train")


def test_readme_table_names_every_registered_task_and_mixture():
  """tasks/README.md's table and mixture line name exactly the registered tasks and mixtures
  (`{k}` stands for the number of shots)."""
  import pathlib  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  text = (pathlib.Path(tasks.__file__).parent / "README.md").read_text()
  cells = [line.split("|")[1] for line in text.splitlines()
           if line.startswith("| `")]
  mixtures = re.search(r"^Mixtures: (.*)$", text, re.MULTILINE).group(1)
  documented = re.findall(r"`([a-z0-9_{}]+)`", " ".join(cells) + " " + mixtures)
  patterns = {d: re.compile(re.escape(d).replace(r"\{k\}", r"\d+")) for d in documented}
  # What `import hint_jax_tasks` registers, in a fresh process (other tests add tasks here).
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ("import json, hint_jax_tasks, seqio; print(json.dumps(sorted("
          "set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))))")
  out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       text=True).stdout
  registered = set(json.loads(out.strip().splitlines()[-1]))
  undocumented = sorted(n for n in registered if not any(p.fullmatch(n) for p in patterns.values()))
  stale = sorted(d for d, p in patterns.items() if not any(p.fullmatch(n) for n in registered))
  assert not undocumented and not stale, (undocumented, stale)
