"""Drill 5: bad input through the command-line entry points and the Predictor.

Every error is one line on stderr naming the culprit (no traceback), a non-zero exit and no
partial output. The command lines run in one subprocess (`reliability_cli_driver.py`, one JAX
import); valid-but-odd inputs (empty and 100k-token instructions) must work.
"""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reliability_helpers import tiny_hint

from hint_jax.data import vocab as vocab_lib
from hint_jax.serving import checkpoint_io
from hint_jax.serving import predictor as predictor_lib
from hint_jax.training import checkpoint

REPO = pathlib.Path(__file__).resolve().parents[2]
DRIVER = pathlib.Path(__file__).with_name("reliability_cli_driver.py")
LONG_INSTRUCTION = "word " * 100_000  # about 100k tokens
TRAIN = ["train", "--gin_file=runs/tiny_cpu.gin",
         "--gin.train_config.TrainConfig.progress_bar=False"]
EVAL = ["eval", "--gin_file=runs/tiny_cpu_eval.gin"]

# (id, entry, argv with {w} = work dir and {o} = this case's output path, expected stderr text)
ERRORS = [
    ("no_gin_file", "main", ["train"], "no --gin_file given"),
    ("unknown_command", "main", ["serve", "--gin_file=runs/tiny_cpu.gin"],
     "invalid choice: 'serve'"),
    ("gin_file_missing", "main", ["train", "--gin_file=runs/nope.gin"], "runs/nope.gin"),
    ("binding_without_value", "main", [*TRAIN, "--gin.MODEL_DIR"], "--gin.MODEL_DIR"),
    ("misspelled_binding", "main", [*TRAIN, "--gin.MODEL_DIR='{o}'",
                                    "--gin.train_config.TrainConfig.trian_steps=3"], "trian_steps"),
    ("model_dir_unset", "main", TRAIN, "MODEL_DIR"),
    ("bad_gin_value", "main", [*TRAIN, "--gin.MODEL_DIR='{o}'",
                               "--gin.optim.OptimConfig.schedule='step'"], "'step'"),
    ("negative_steps", "main", [*TRAIN, "--gin.MODEL_DIR='{o}'", "--gin.TRAIN_STEPS=-1"],
     "(-1)"),
    ("unknown_mixture", "main", [*TRAIN, "--gin.MODEL_DIR='{o}'",
                                 "--gin.MIXTURE_OR_TASK_NAME='synthetic_hnit'"],
     "'synthetic_hnit'"),
    ("mesh_not_dividing", "main", [*TRAIN, "--gin.MODEL_DIR='{o}'",
                                   "--gin.mesh.MeshConfig.model_parallel=3"], "model_parallel=3"),
    ("batch_not_divisible", "main", [*TRAIN, "--gin.MODEL_DIR='{o}'", "--gin.BATCH_SIZE=12"],
     "BATCH_SIZE=12"),
    ("model_dir_not_writable", "main", [*TRAIN, "--gin.MODEL_DIR='{w}/a_file/run'"], "a_file"),
    ("two_processes_no_coordinator", "main", [*TRAIN, "--gin.MODEL_DIR='{o}'",
                                              "--num_processes=2"], "coordinator_address"),
    ("eval_missing_model_dir", "main", [*EVAL, "--gin.MODEL_DIR='{w}/no_such_run'"],
     "no_such_run"),
    ("eval_incompatible_checkpoint", "main", [*EVAL, "--gin.MODEL_DIR='{w}/toy_run'"],
     "toy_run"),
    ("infer_malformed_json", "infer", ["--input", "{w}/bad_json.jsonl"], "bad_json.jsonl:2"),
    ("infer_wrong_schema", "infer", ["--input", "{w}/schema.jsonl"], "schema.jsonl:1"),
    ("infer_instruction_not_string", "infer", ["--input", "{w}/instr_type.jsonl"],
     "instr_type.jsonl:1"),
    ("infer_not_an_object", "infer", ["--input", "{w}/array.jsonl"], "array.jsonl:1"),
    ("infer_invalid_utf8", "infer", ["--input", "{w}/latin1.jsonl"], "latin1.jsonl"),
    ("infer_missing_input_file", "infer", ["--input", "{w}/nope.jsonl"], "nope.jsonl"),
    ("infer_missing_model_dir", "infer", ["--model_dir", "{w}/no_such_run"], "no_such_run"),
    ("infer_empty_model_dir", "infer", ["--model_dir", "{w}/empty_run"], "empty_run"),
    ("infer_missing_step", "infer", ["--step", "7"], "no checkpoint step 7"),
    ("infer_incompatible_checkpoint", "infer", ["--model_dir", "{w}/mismatch_run"],
     "mismatch_run"),
    ("infer_missing_vocabulary", "infer", ["--vocab", "{w}/nope.model"], "nope.model"),
    ("infer_vocabulary_not_sentencepiece", "infer", ["--vocab", "{w}/good.jsonl"], "good.jsonl"),
    ("infer_output_dir_not_writable", "infer", ["--output", "{w}/a_file/out.jsonl"], "a_file"),
    ("infer_bad_method", "infer", ["--method", "beam_search"], "beam_search"),
]
INFER_DEFAULTS = {"--model_dir": "{w}/run", "--input": "{w}/good.jsonl", "--output": "{o}",
                  "--max_decode_len": "4", "--batch_size": "8"}
VALID = [("infer_empty_instruction", "{w}/empty_instruction.jsonl"),
         ("infer_100k_token_instruction", "{w}/long.jsonl")]


def _infer_argv(argv: list[str]) -> list[str]:
  out = list(argv)
  for flag, value in INFER_DEFAULTS.items():
    if flag not in out:
      out += [flag, value]
  return [*out, "--no_progress"]


def _save_run(path: pathlib.Path, params: dict, meta: dict, step: int = 3) -> None:
  ckpt = checkpoint.Checkpointer(path / "checkpoints",
                                 checkpoint.CheckpointConfig(async_save=False), "sig")
  state = {"trainable": {"hypernet": params["hypernet"]},
           "frozen": {"backbone": params["backbone"]}}
  ckpt.save(step, state, meta)
  ckpt.close()


def _make_inputs(w: pathlib.Path) -> None:
  good = [{"instruction": "Say yes.", "input": "a b"}, {"instruction": "", "input": "c"}]
  (w / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good))
  (w / "bad_json.jsonl").write_text(json.dumps(good[0]) + "\n{'input': 'x'}\n")
  (w / "schema.jsonl").write_text('{"instruction": "x", "inputs": "y"}\n')
  (w / "instr_type.jsonl").write_text('{"instruction": ["x"], "input": "y"}\n')
  (w / "array.jsonl").write_text('["x", "y"]\n')
  (w / "latin1.jsonl").write_bytes(b'{"instruction": "", "input": "ok"}\n'
                                   b'{"instruction": "caf\xe9", "input": "y"}\n')
  (w / "empty_instruction.jsonl").write_text('{"instruction": "", "input": "hello"}\n')
  (w / "long.jsonl").write_text(json.dumps({"instruction": LONG_INSTRUCTION, "input": "x"}) + "\n")
  (w / "a_file").write_text("not a directory")
  (w / "empty_run").mkdir()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> pathlib.Path:
  w = tmp_path_factory.mktemp("bad_input")
  _make_inputs(w)
  model, params = tiny_hint(adapter_size=4)
  _save_run(w / "run", params, {"hint_config": checkpoint_io.config_to_dict(model.config)})
  other, _ = tiny_hint(adapter_size=8)  # the config says 8, the arrays were made with 4
  _save_run(w / "mismatch_run", params,
            {"hint_config": checkpoint_io.config_to_dict(other.config)})
  toy = {"backbone": {"wi": np.ones((8, 16), np.float32)},
         "hypernet": {"wi": np.ones((8, 16), np.float32)}}  # another model's checkpoint
  _save_run(w / "toy_run", toy, {})
  return w


@pytest.fixture(scope="module")
def results(work) -> dict:
  cases = []
  for case_id, entry, argv, _ in ERRORS:
    cases.append((case_id, entry, _infer_argv(argv) if entry == "infer" else argv))
  for case_id, src in VALID:
    cases.append((case_id, "infer", _infer_argv(["--input", src])))
  spec_ = [{"id": i, "entry": e, "argv": [a.format(w=work, o=work / f"out_{i}") for a in argv]}
           for i, e, argv in cases]
  (work / "cases.json").write_text(json.dumps(spec_))
  env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, str(DRIVER), str(work / "cases.json"),
                         str(work / "results.json")], cwd=REPO, env=env, check=False,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads((work / "results.json").read_text())


@pytest.mark.parametrize("case_id,expected", [(c[0], c[3]) for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_bad_command_line_input_fails_in_one_line(work, results, case_id, expected):
  r = results[case_id]
  # Progress logging (e.g. TensorFlow's start-up notices) may precede it; the error is one line.
  lines = [line for line in r["stderr"].splitlines() if line.startswith("hint-jax")]
  assert r["code"] not in (0, 99) and "Traceback" not in r["stderr"], r
  assert len(lines) == 1 and " error: " in lines[0], r["stderr"][-3000:]
  assert expected in lines[0], lines[0]
  assert r["stdout"] == ""
  out = work / f"out_{case_id}"
  assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
  assert not list(work.glob(".infer-*")) and not list((work / "a_file").parent.glob("*.tmp"))


def test_empty_instruction_is_valid(work, results):
  r = results["infer_empty_instruction"]
  assert r["code"] == 0, r["stderr"][-3000:]
  rows = [json.loads(line) for line in (work / "out_infer_empty_instruction").read_text()
          .splitlines()]
  assert len(rows) == 1 and rows[0]["instruction"] == "" and isinstance(rows[0]["prediction"], str)


def test_100k_token_instruction_is_truncated_and_counted(work, results):
  r = results["infer_100k_token_instruction"]
  assert r["code"] == 0, r["stderr"][-3000:]
  stats = json.loads(r["stderr"].strip().splitlines()[-1])
  assert stats["truncated"] == {"instructions": 1, "inputs": 0}, stats
  rows = (work / "out_infer_100k_token_instruction").read_text().splitlines()
  assert len(rows) == 1 and "prediction" in json.loads(rows[0])


@pytest.fixture(scope="module")
def predictor():
  model, params = tiny_hint(adapter_size=4)
  return predictor_lib.Predictor(model, jax.tree.map(jnp.asarray, params),
                                 vocab_lib.get_vocabulary(), checkpoint_id="bad-input")


@pytest.mark.parametrize("call,message", [
    (lambda p: p.generate("Say yes.", ["x"]), "instructions must be a list of strings"),
    (lambda p: p.generate([None], ["x"]), "instructions[0] must be a string"),
    (lambda p: p.generate(["a", "b"], ["x"]), "got 2 instructions but 1 inputs"),
    (lambda p: p.generate([""], [b"x"]), "inputs[0] must be a string"),
    (lambda p: p.generate([""], ["x"], beams=3), "unknown decode option(s) ['beams']"),
    (lambda p: p.generate([""], ["x"], method="nucleus"), "'nucleus'"),
    (lambda p: p.score([""], ["x"], []), "0 targets"),
], ids=["instructions_not_a_list", "instruction_none", "length_mismatch", "input_bytes",
        "unknown_option", "unknown_method", "score_length_mismatch"])
def test_predictor_rejects_bad_requests_in_one_line(predictor, call, message):
  with pytest.raises(ValueError) as error:
    call(predictor)
  assert message in str(error.value) and "\n" not in str(error.value)
