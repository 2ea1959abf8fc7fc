"""No silent mistakes: misspelled gin macros, unquoted strings, bad request records and
mismatched checkpoints are one-line errors naming the culprit."""
import dataclasses
import json

import numpy as np
import pytest

from hint_jax.models import config as model_config
from hint_jax.run import assemble, gin_utils, main
from hint_jax.serving import cli
from hint_jax.t5 import config as t5_config
from hint_jax.training import checkpoint

TINY = ["--gin_file=runs/tiny_cpu.gin"]


def _error_line(capsys) -> str:
  err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hint-jax")]
  assert len(err) == 1, err
  return err[0]


@pytest.mark.parametrize("bindings,expected", [
    (["--gin.MODEL_DIR='/tmp/x'", "--gin.TRAIN_STEP=10"],
     ["unknown gin macro TRAIN_STEP in --gin.TRAIN_STEP=10", "did you mean TRAIN_STEPS?"]),
    (["--gin.MODEL_DIR=/tmp/x"],
     ["bad value in --gin.MODEL_DIR=/tmp/x", "quote strings", "--gin.MODEL_DIR=\"'/tmp/x'\""]),
    (["--gin.MODEL_DIR='/tmp/x'", "--gin.CONVERTER=concat"],
     ["bad value in --gin.CONVERTER=concat", "quote strings"]),
    (["--gin.MODEL_DIR='/tmp/x'", "--gin.train_config.TrainConfig.train_steps=%TRAIN_STEP"],
     ["undefined gin macro %TRAIN_STEP in --gin.train_config.TrainConfig.train_steps=%TRAIN_STEP",
      "did you mean TRAIN_STEPS?"]),
    (["--gin.MODEL_DIR='/tmp/x'", "--gin.optim.OptimConfig.lr=3"],
     ["in --gin.optim.OptimConfig.lr=3", "doesn't have a parameter named 'lr'"]),
])
def test_bad_gin_bindings_name_the_binding(capsys, bindings, expected):
  assert main.main(["train", *TINY, *bindings]) == 2
  line = _error_line(capsys)
  assert "config string" not in line and len(line) < 300, line
  for text in expected:
    assert text in line, line


def test_known_and_new_but_used_macros_are_accepted():
  search = str(gin_utils.DEFAULT_SEARCH_PATH)
  gin_utils.parse_gin(["runs/tiny_cpu.gin"], ["MODEL_DIR='/tmp/x'", "TRAIN_STEPS=7",
                                              "MY_SEED=3", "DATA_SEED=%MY_SEED"], search)
  import gin  # pylint: disable=import-outside-toplevel
  assert gin.query_parameter("TRAIN_STEPS/gin.macro.value") == 7
  assert gin.query_parameter("MY_SEED/gin.macro.value") == 3
  gin.clear_config()


@pytest.mark.parametrize("record,message", [
    ({"input": "a"}, "in.jsonl:2: missing field 'instruction' (use \"instruction\": \"\""),
    ({"instrucion": "x", "input": "a"},
     "in.jsonl:2: unknown field 'instrucion' (did you mean 'instruction'?)"),
    ({"instruction": "x", "inptu": "a"}, "in.jsonl:2: unknown field 'inptu' (did you mean 'input'?)"),
    ({"instruction": "x", "input": 3}, "in.jsonl:2: 'input' must be a string, got int"),
])
def test_bad_request_records_are_one_line_errors(tmp_path, capsys, record, message):
  src = tmp_path / "in.jsonl"
  src.write_text(json.dumps({"instruction": "", "input": "ok", "id": 1}) + "\n"
                 + json.dumps(record) + "\n")
  code = cli.infer_main(["--model_dir", str(tmp_path / "no_run"), "--input", str(src),
                         "--output", str(tmp_path / "out.jsonl"), "--no_progress"])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 1 and len(err) == 1 and message in err[0], err
  assert not (tmp_path / "out.jsonl").exists()


def test_empty_instruction_and_extra_fields_are_read():
  # pylint: disable-next=protected-access
  problems = [cli._check_record(r) for r in (
      {"instruction": "", "input": "x"}, {"instruction": "a", "input": "x", "id": 3})]
  assert problems == [None, None]


def test_config_mismatch_names_only_differing_fields(tmp_path):
  base = model_config.HintConfig(t5=t5_config.T5Config.preset("tiny"))
  other = dataclasses.replace(base, t5=dataclasses.replace(base.t5, d_model=16), fusion=False)
  state = {"w": np.zeros(3, np.float32)}
  ckpt = checkpoint.Checkpointer(tmp_path, checkpoint.CheckpointConfig(async_save=False),
                                 assemble.signature(base) + " | optim=adamw")
  ckpt.save(1, state, {})
  ckpt.close()
  reader = checkpoint.Checkpointer(tmp_path, checkpoint.CheckpointConfig(async_save=False),
                                   assemble.signature(other) + " | optim=adamw")
  with pytest.raises(checkpoint.CheckpointMismatchError) as info:
    reader.restore(1, state)
  reader.close()
  line = main._one_line(info.value)  # pylint: disable=protected-access
  assert "fusion: checkpoint True, this run False" in line, line
  assert "t5.d_model: checkpoint 12, this run 16" in line, line
  assert "vocab_size" not in line and "optim" not in line and "\n" not in line, line
