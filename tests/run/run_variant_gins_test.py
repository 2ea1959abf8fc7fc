"""The run files of the original's variants without a paper number of their own (P3 few-shot,
no-instruction ablation): every command in their headers parses and resolves to the recipe the
header states, and the tasks they name build records."""
import os
import pathlib
import re
import shlex

import gin
import hint_jax_tasks  # noqa: F401  (registers the tasks read by name)
import pytest

from hint_jax.data import features as F
from hint_jax.data import no_instruction, pipeline
from hint_jax.models import config as model_config
from hint_jax.run import assemble, gin_utils
from hint_jax.training import config as train_config

GIN = pathlib.Path(gin_utils.DEFAULT_SEARCH_PATH)
SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
LONG = {"instruction": 1024, "inputs": 1024, "targets": 256}
CONCAT = {"inputs": 1024, "targets": 256}
# run file -> per header command: (task, steps, batch, lengths, converter, fusion)
EXPECTED = {
    "finetune_p3_few_shot.gin": [("p3_2shot_hint", 10_000, 2048, LONG, "hint", True),
                                 ("p3_2shot_concat", 10_000, 2048, CONCAT, "concat", None)],
    "finetune_sni_no_instruction.gin": [
        ("sni_def_2pos_noinstr", 1000, 1024, LONG, "hint", False),
        ("p3_noinstr", 20_000, 2048, {"instruction": 512, "inputs": 1024, "targets": 256},
         "hint", False)],
}


def _header_commands(name: str) -> list[list[str]]:
  """The `hint-jax train` commands of a run file's header comment, as argv."""
  lines = [ln[1:].strip() for ln in (GIN / "runs" / name).read_text().splitlines()
           if ln.startswith("#")]
  text = "\n".join(lines).replace("\\\n", " ")
  return [shlex.split(ln) for ln in text.splitlines() if ln.startswith("hint-jax train ")]


def _resolve(argv: list[str]):
  rest, bindings = gin_utils.split_bindings(argv[2:])
  files = [a.split("=", 1)[1] for a in rest if a.startswith("--gin_file=")]
  assert len(files) == len(rest), rest
  gin_utils.parse_gin(files, bindings, str(GIN))
  try:
    return (gin.get_configurable(train_config.TrainConfig)(),
            gin.get_configurable(assemble.DataConfig)(),
            gin.get_configurable(model_config.HintConfig)())
  finally:
    gin.clear_config()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_header_commands_resolve_to_the_stated_recipe(name):
  commands = _header_commands(name)
  assert len(commands) == len(EXPECTED[name])
  for argv, (task, steps, batch, lengths, converter, fusion) in zip(commands, EXPECTED[name]):
    trainer, data, model = _resolve(argv)
    assert (data.mixture_or_task_name, trainer.train_steps, data.batch_size) == (
        task, steps, batch)
    assert dict(data.task_feature_lengths) == lengths and data.converter == converter
    assert (trainer.optim.name, trainer.optim.learning_rate, trainer.optim.schedule) == (
        "adafactor", 1e-3, "constant")
    assert model.t5.dropout_rate == 0.1
    if fusion is None:  # the concatenation baseline: a plain T5
      assert model.hypernet is None and not model.fusion
    else:
      assert model.hypernet is not None and model.fusion == fusion


def test_every_task_a_header_names_is_registered():
  names = set()
  for name in EXPECTED:
    text = (GIN / "runs" / name).read_text()
    names |= set(re.findall(r"""MIXTURE_OR_TASK_NAME\s*=\s*"?'(\w+)'""", text))
    names |= set(re.findall(r"\(or '(\w+)'\)", text))
  assert {"p3_2shot_hint", "p3_5shot_hint", "p3_2shot_both", "sni_def_1pos_noinstr"} <= names
  assert names <= set(pipeline.available_names())


@pytest.fixture()
def small_data(tmp_path, monkeypatch):
  """$HINT_DATA_DIR with two real P3 templates and one SNI train task."""
  templates = tmp_path / "p3_sample" / "templates"
  templates.mkdir(parents=True)
  for name in ("glue_mrpc_same_thing", "ag_news_classify"):
    os.symlink(SHARED / "p3_sample" / "templates" / f"{name}.jsonl", templates / f"{name}.jsonl")
  splits = tmp_path / "sni" / "splits" / "default"
  splits.mkdir(parents=True)
  names = (SHARED / "sni" / "splits" / "default" / "train_tasks.txt").read_text().split()
  (splits / "train_tasks.txt").write_text(names[0] + "\n")
  os.symlink(SHARED / "sni" / "tasks", tmp_path / "sni" / "tasks")
  monkeypatch.setenv("HINT_DATA_DIR", str(tmp_path))
  monkeypatch.delenv("HINT_P3_TFRECORDS", raising=False)
  return tmp_path


def _records(name: str, split: str) -> list[dict]:
  task = pipeline.registry().get_mixture_or_task(name)
  ds = task.source.get_dataset(split, shuffle=False)
  return [{k: v.decode() if isinstance(v, bytes) else v for k, v in ex.items()}
          for ex in ds.as_numpy_iterator()]


def test_registered_variant_tasks_build_their_records(small_data):
  del small_data
  hint = _records("p3_4shot_hint", "validation")
  concat = _records("p3_4shot_concat", "validation")
  assert len(hint) == len(concat) == 2 * 5
  assert all(r[F.INSTRUCTION].count(" Output: ") == 4 for r in hint)
  assert all(r[F.INSTRUCTION] == "" and r[F.INPUTS].count(" Output: ") == 4 for r in concat)
  noinstr = _records("sni_def_2pos_noinstr", "train")
  both = _records("sni_def_2pos_both", "train")
  assert [r[F.INPUTS] for r in noinstr] == [r[F.INPUTS] for r in both] and noinstr
  assert {r[F.INSTRUCTION] for r in noinstr} == {no_instruction.NO_INSTRUCTION}
  p3_noinstr = _records("p3_noinstr", "train")
  assert {r[F.INSTRUCTION] for r in p3_noinstr} == {no_instruction.NO_INSTRUCTION}
  assert len(p3_noinstr) == 2 * 45
