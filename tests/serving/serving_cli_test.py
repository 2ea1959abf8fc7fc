"""Tests for the `hint-jax infer` and `hint-jax flops` command-line functions."""
import json

import pytest

from hint_jax.hypernet import config as hypernet_config
from hint_jax.peft import spec
from hint_jax.serving import checkpoint_io, cli
from hint_jax.serving import predictor as predictor_lib
from hint_jax.training import checkpoint

REQUESTS = [{"instruction": "Say yes.", "input": "a b", "id": "r0"},
            {"instruction": "", "input": "hello"},
            {"instruction": "Say yes.", "input": "c d"}]


@pytest.fixture(scope="module")
def model_dir(make_model, tmp_path_factory):
  model, params, vocab = make_model(spec.PeftConfig(adapter_size=4, prefix_length=2),
                                    hypernet_config.HypernetConfig(), True)
  path = tmp_path_factory.mktemp("run")
  ckpt = checkpoint.Checkpointer(str(path / "checkpoints"),
                                 checkpoint.CheckpointConfig(async_save=False), "sig")
  state = {"trainable": {"hypernet": params["hypernet"]},
           "frozen": {"backbone": params["backbone"]}}
  ckpt.save(3, state, {"hint_config": checkpoint_io.config_to_dict(model.config)})
  ckpt.close()
  return path, model, params, vocab


def _write(path, lines):
  path.write_text("".join(lines))
  return str(path)


@pytest.mark.parametrize("extra", [[], ["--no_cache_memory"]])
def test_infer_main_writes_predictions(model_dir, tmp_path, capsys, extra):
  path, model, params, vocab = model_dir
  src = _write(tmp_path / "in.jsonl", [json.dumps(r) + "\n" for r in REQUESTS])
  out = tmp_path / "out.jsonl"
  status = cli.infer_main(["--model_dir", str(path), "--input", src, "--output", str(out),
                           "--batch_size", "2", "--max_decode_len", "5", "--no_progress",
                           *extra])
  assert status == 0
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r["input"] for r in rows] == [r["input"] for r in REQUESTS] and rows[0]["id"] == "r0"
  stats = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
  assert stats["examples"] == 3 and stats["distinct_instructions"] == 2
  assert stats["cache"]["misses"] == 2 and stats["examples_per_s"] > 0
  direct = predictor_lib.Predictor(model, params, vocab, buckets=predictor_lib.Buckets(
      batch_sizes=(1, 2, 8), max_decode_len=5))
  expected = []
  for lo in (0, 2):  # the same chunks (and compiled shapes) as --batch_size 2
    chunk = REQUESTS[lo:lo + 2]
    expected += direct.generate([r["instruction"] for r in chunk], [r["input"] for r in chunk])
  assert [r["prediction"] for r in rows] == expected


@pytest.mark.parametrize("line,message", [
    ('{"instruction": "x"}\n', "in.jsonl:2: expected an object with a string 'input'"),
    ("not json\n", "in.jsonl:2: not valid JSON"),
    ('{"instruction": 3, "input": "y"}\n', "in.jsonl:2: 'instruction' must be a string"),
])
def test_infer_main_bad_input_leaves_no_output(model_dir, tmp_path, capsys, line, message):
  src = _write(tmp_path / "in.jsonl", [json.dumps(REQUESTS[0]) + "\n", line])
  out = tmp_path / "out.jsonl"
  status = cli.infer_main(["--model_dir", str(model_dir[0]), "--input", src, "--output",
                           str(out), "--no_progress"])
  err = capsys.readouterr().err
  assert status == 1 and message in err and len(err.strip().splitlines()) == 1
  assert list(tmp_path.iterdir()) == [tmp_path / "in.jsonl"]


def test_run_infer_is_atomic_on_failure(tmp_path):
  class Failing:
    def generate(self, instructions, inputs, **_):
      raise RuntimeError("device lost")
  with pytest.raises(RuntimeError):
    cli.run_infer(Failing(), REQUESTS, str(tmp_path / "out.jsonl"), 2, progress=False)
  assert not list(tmp_path.iterdir())


def test_flops_main_prints_table(tmp_path, capsys):
  status = cli.flops_main(["--presets", "base,xxl", "--xla_presets", "", "--amortise", "1,100",
                           "--json", str(tmp_path / "f.json")])
  out = capsys.readouterr().out
  assert status == 0 and "| xxl | def2pos | concat |" in out and "GF/example n=100" in out
  assert len(json.loads((tmp_path / "f.json").read_text())) == 8
  assert cli.flops_main(["--presets", "huge"]) == 1
