"""`hint-jax` command line: one-line errors with non-zero exits, and a tiny end-to-end run."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from hint_jax.run import main

REPO = pathlib.Path(__file__).resolve().parents[2]


def _error_line(capsys) -> str:
  err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hint-jax")]
  assert len(err) == 1, err
  return err[0]


def test_unknown_gin_file_via_python_m():
  proc = subprocess.run([sys.executable, "-m", "hint_jax", "train", "--gin_file=runs/nope.gin"],
                        check=False, capture_output=True, text=True, cwd=REPO, timeout=120,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "hint-jax: error: gin file not found: runs/nope.gin")
  assert proc.stdout == ""


@pytest.mark.parametrize("argv,message", [
    (["train"], "no --gin_file given"),
    (["serve", "--gin_file=runs/tiny_cpu.gin"], "bad command line"),
    (["train", "--gin_file=runs/tiny_cpu.gin", "--gin.MODEL_DIR"], "bad gin binding"),
    (["train", "--gin_file=runs/tiny_cpu.gin"], "MODEL_DIR"),
    (["train", "--gin_file=runs/tiny_cpu.gin", "--gin.MODEL_DIR='/tmp/x'",
      "--gin.train_config.TrainConfig.trian_steps=3"], "doesn't have a parameter named"),
    (["train", "--gin_file=runs/tiny_cpu.gin", "--gin.MODEL_DIR='/tmp/x'",
      "--gin.optim.OptimConfig.schedule='step'"], "schedule must be one of"),
])
def test_bad_command_lines_give_one_line_errors(capsys, argv, message):
  assert main.main(argv) != 0
  line = _error_line(capsys)
  assert message in line, line


def test_multi_process_flags_need_a_coordinator(capsys):
  assert main.main(["train", "--gin_file=runs/tiny_cpu.gin", "--num_processes=2"]) == 1
  assert "num_processes=2 needs --coordinator_address" in _error_line(capsys)


def test_mesh_that_does_not_divide_is_reported(capsys, tmp_path):
  code = main.main(["train", "--gin_file=runs/tiny_cpu.gin", f"--gin.MODEL_DIR='{tmp_path}'",
                    "--gin.mesh.MeshConfig.model_parallel=3"])
  assert code == 1
  assert "model_parallel=3 does not divide the 8 available devices" in _error_line(capsys)


@pytest.mark.slow
def test_tiny_train_then_eval_end_to_end(capsys, tmp_path):
  run = ["--gin_file=runs/tiny_cpu.gin", f"--gin.MODEL_DIR='{tmp_path}'", "--gin.TRAIN_STEPS=3",
         "--gin.BATCH_SIZE=8", "--gin.checkpoint.CheckpointConfig.period=2",
         "--gin.optim.OptimConfig.warmup_steps=1",
         "--gin.train_config.TrainConfig.progress_bar=False"]
  assert main.main(["train", *run]) == 0
  assert "hint-jax: done: 3" in capsys.readouterr().out
  operative = (tmp_path / "operative_config.gin").read_text()
  assert "TRAIN_STEPS = 3" in operative and "synthetic_hint" in operative
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "3"]
  assert main.main(["eval", "--gin_file=runs/tiny_cpu_eval.gin", f"--gin.MODEL_DIR='{tmp_path}'",
                    "--gin.BATCH_SIZE=112", ("--gin.TASK_FEATURE_LENGTHS={'instruction': 48, "
                    "'inputs': 32, 'targets': 4}")]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["step"] == 3 and result["examples"] > 0 and 0 <= result["exact_match"] <= 100
  assert (tmp_path / "eval" / "synthetic_hint_validation_3.json").exists()
  # The trained run serves a jsonl file through the cached Predictor with no extra config file:
  # the checkpoint meta carries the model config.
  requests = tmp_path / "requests.jsonl"
  requests.write_text("".join(json.dumps({"instruction": ins, "input": "b a c"}) + "\n"
                              for ins in ("Sort the words.", "Reverse the words.", "")))
  out = tmp_path / "predictions.jsonl"
  assert not (tmp_path / "hint_config.json").exists()
  assert main.main(["infer", f"--model_dir={tmp_path}", f"--input={requests}", f"--output={out}",
                    "--batch_size=4", "--max_decode_len=4", "--no_progress"]) == 0
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r["instruction"] for r in rows] == ["Sort the words.", "Reverse the words.", ""]
  assert all(isinstance(r["prediction"], str) for r in rows)


def test_flops_command_prints_a_table(capsys):
  assert main.main(["flops", "--presets=small", "--formats=def2pos", "--xla_presets=",
                    "--amortise=1,100"]) == 0
  out = capsys.readouterr().out
  assert "small" in out and "|" in out


def test_help_lists_every_command(capsys):
  """`hint-jax --help` shows the commands served outside gin too (flops, jsonl infer, cache)."""
  with pytest.raises(SystemExit) as e:
    main.main(["--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  for text in ("train --gin_file", "eval  --gin_file", "infer --model_dir=D --input=",
               "flops", "cache-tasks NAME..."):
    assert text in out, text
