"""`hint-jax eval` reports the paper's metrics by task: SNI ROUGE-L / exact match (overall, per
category, per task, reliance controls) and P3 held-out rank-classification accuracy; each equals
an independent unsharded computation on the same examples. Gin headers name real tasks."""
import json
import pathlib
import re

import hint_jax_tasks  # noqa: F401  (registers the tasks read by name)
import jax
import numpy as np
import pytest

from hint_jax.data import features as F
from hint_jax.data import pipeline
from hint_jax.data import rank_classification as rank_lib
from hint_jax.data import vocab as vocab_lib
from hint_jax.evaluation import sni_report
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.run import assemble, gin_utils
from hint_jax.run import evaluate as run_eval
from hint_jax.t5 import config as t5_config
from hint_jax.training import checkpoint

LENGTHS = {F.INSTRUCTION: 48, F.INPUTS: 48, F.TARGETS: 6}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(model config, model, params, model_dir) of a tiny random HINT saved as step 5."""
  cfg = model_config.HintConfig(
      t5=t5_config.T5Config.preset("tiny", vocab_size=vocab_lib.get_vocabulary().vocab_size),
      peft=spec.PeftConfig(adapter_size=4, prefix_length=2), max_instruction_length=48)
  model = hint.HintModel(cfg)
  batch = {F.ENCODER_INPUT_TOKENS: np.ones((1, 8), np.int32),
           F.DECODER_INPUT_TOKENS: np.ones((1, 4), np.int32)}
  shapes = hint.unbox(jax.eval_shape(model.init, jax.random.key(0), batch))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0.0, 0.3, s.shape).astype(s.dtype), shapes)
  model_dir = tmp_path_factory.mktemp("run")
  ckpt = checkpoint.Checkpointer(model_dir / "checkpoints",
                                 checkpoint.CheckpointConfig(async_save=False), "sig")
  ckpt.save(5, {"trainable": params, "frozen": {}}, {})
  ckpt.close()
  return cfg, model, params, str(model_dir)


def _data(name: str, batch_size: int = 8) -> assemble.DataConfig:
  return assemble.DataConfig(name, LENGTHS, batch_size, split="test")


def test_sni_eval_reports_rouge_and_exact_match_by_task_and_category(run):
  cfg, model, params, model_dir = run
  result = run_eval.evaluate(cfg, _data("sni_def_2pos_hint"), model_dir, max_examples=1,
                             controls=True, progress=False)
  examples = run_eval.limit_per_task(
      [ex for exs in pipeline.load_source("sni_def_2pos_hint", "test").examples for ex in exs], 1)
  ev = pipeline.batch_eval_examples(examples, LENGTHS, 8)
  predict = jax.jit(lambda p, b: model.predict_batch(p, b, max_decode_len=LENGTHS[F.TARGETS]))
  vocab, preds = vocab_lib.get_vocabulary(), {}
  for batch, ids in zip(ev.batches, ev.example_ids):
    for row, i in zip(np.asarray(predict(params, batch)), ids):
      if i >= 0:
        preds[int(i)] = vocab.decode(row.tolist())
  expected = sni_report.build_report([sni_report.ScoredExample(
      ex["task"], preds[i], tuple(ex["references"]), ex["category"]) for i, ex in
      enumerate(examples)])
  tasks = {ex["task"] for ex in examples}
  assert result["examples"] == len(tasks) > 10 and result["step"] == 5
  assert result["rougeL"] == pytest.approx(expected["overall"]["rougeL"])
  assert result["exact_match"] == pytest.approx(expected["overall"]["exact_match"])
  saved = json.loads(pathlib.Path(result["report"] + ".json").read_text())
  assert set(saved["report"]["per_task"]) == tasks
  assert saved["report"]["per_category"].keys() == expected["per_category"].keys()
  for category, summary in expected["per_category"].items():
    assert saved["report"]["per_category"][category] == pytest.approx(summary), category
  assert saved["reliance"]["conditions"]["true"] == saved["report"]["overall"]
  assert set(saved["reliance"]["instruction_gain"]) == {"exact_match", "rougeL"}
  markdown = pathlib.Path(result["report"] + ".md").read_text()
  assert "## Per category" in markdown and "## Instruction-reliance controls" in markdown


def test_p3_heldout_eval_is_rank_classification_accuracy(run):
  cfg, model, params, model_dir = run
  name = "p3_heldout_rank_classification"
  result = run_eval.evaluate(cfg, _data(name, batch_size=16), model_dir, max_examples=2,
                             progress=False)
  task = pipeline.registry().get_mixture_or_task(name)
  examples = run_eval.limit_per_task(pipeline.load_task(name, "test"), 2)
  rows = rank_lib.expand_choices(examples, task.output_features[F.TARGETS].vocabulary.encode)
  ev = pipeline.batch_eval_examples(rows, LENGTHS, 16)
  score = jax.jit(model.score_fn)
  scores = np.concatenate([np.asarray(score(params, b)) for b in ev.batches])[:len(rows)]
  expected = rank_lib.accuracy(scores, rows)
  assert set(expected) == {"accuracy", *(f"accuracy_{d}" for d in rank_lib.HELDOUT_TASKS)}
  for key, value in expected.items():
    assert result[key] == pytest.approx(value), key
  assert result["examples"] == len(examples) and "rougeL" not in result
  markdown = pathlib.Path(result["report"] + ".md").read_text()
  assert "| average |" in markdown and "| copa |" in markdown


GIN = pathlib.Path(gin_utils.DEFAULT_SEARCH_PATH)
_NAMED = re.compile(r"""(?:MIXTURE_OR_TASK_NAME|task_name)\s*=\s*"?'(\w+)'""")


@pytest.mark.parametrize("path", sorted(GIN.rglob("*.gin")), ids=lambda p: str(p.relative_to(GIN)))
def test_gin_files_name_tasks_that_exist(path):
  names = _NAMED.findall(path.read_text())
  names += re.findall(r"\(or '(\w+)'\)", path.read_text())  # alternatives in a header
  unknown = sorted(set(names) - set(pipeline.available_names()))
  assert not unknown, f"{path.name} names unknown tasks {unknown}"


def test_gin_task_check_sees_header_commands():
  text = (GIN / "runs" / "eval.gin").read_text()
  assert {"sni_def_2pos_hint", "p3_heldout_rank_classification"} <= set(_NAMED.findall(text))
