"""docs/reproducing_the_paper.md: every `hint-jax` command parses, and each paper run resolves
to the original's recipe (steps, batch, lengths, rate, dropout, initialisation)."""
import pathlib
import re
import shlex

import gin
import pytest

from hint_jax.models import config as model_config
from hint_jax.run import assemble, gin_utils
from hint_jax.run import train as run_train
from hint_jax.training import config as train_config

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "reproducing_the_paper.md"
FOLDER = "gs://my-bucket/runs/"
PRETRAINED = FOLDER + "hint_xl_pretrain/checkpoints"
HINT_LENGTHS = {"instruction": 1024, "inputs": 1024, "targets": 256}
P3_LENGTHS = {"instruction": 512, "inputs": 1024, "targets": 256}
# MODEL_DIR leaf -> (task, steps, batch, lengths, init_from_checkpoint, HF init, backbone dropout)
RUNS = {
    "hint_xl_pretrain": ("hyper_pretrain_text", 10_000, 1024,
                         {"instruction": 512, "inputs": 512, "targets": 512}, None, True, 0.0),
    "hint_xl_sni_2pos": ("sni_def_2pos_hint", 1000, 1024, HINT_LENGTHS, PRETRAINED, False, 0.1),
    "hint_xl_sni_def": ("sni_def_hint", 1000, 1024, HINT_LENGTHS, PRETRAINED, False, 0.1),
    "concat_xl_sni_2pos": ("sni_def_2pos_concat", 1000, 1024, {"inputs": 1024, "targets": 256},
                           None, True, 0.1),
    "hint_xl_p3": ("p3_hint", 20_000, 2048, P3_LENGTHS, PRETRAINED, False, 0.1),
    "concat_xl_p3": ("p3_concat", 20_000, 2048, {"inputs": 1024, "targets": 256}, None, True, 0.1),
    "hint_xl_p3_2shot": ("p3_2shot_hint", 10_000, 2048, HINT_LENGTHS, None, True, 0.1),
    "concat_xl_p3_2shot": ("p3_2shot_concat", 10_000, 2048, {"inputs": 1024, "targets": 256},
                           None, True, 0.1),
    "hint_xl_sni_noinstr": ("sni_def_2pos_noinstr", 1000, 1024, HINT_LENGTHS, None, True, 0.1),
}


def _shell_blocks() -> list[str]:
  return re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def _variables() -> dict[str, str]:
  """The shell variables assigned in section 0."""
  out = {}
  for line in _shell_blocks()[0].splitlines():
    for word in shlex.split(line, comments=True):
      name, sep, value = word.partition("=")
      if sep and re.fullmatch(r"[A-Z0-9_]+", name):
        out[name] = value
  return out


def _commands() -> list[list[str]]:
  """Every `hint-jax ...` command of the page as argv, variables substituted."""
  variables = _variables()
  out = []
  for block in _shell_blocks()[1:]:
    for command in block.replace("\\\n", " ").splitlines():
      if not command.startswith("hint-jax "):
        continue
      # unquoted expansion, as the shell does: words split, quotes inside the value kept
      command = re.sub(r"\$([A-Z0-9_]+)", lambda m: " ".join(
          shlex.quote(w) for w in variables.get(m.group(1), m.group(0)).split()), command)
      out.append(shlex.split(command))
  return out


def _parse(argv: list[str]) -> None:
  rest, bindings = gin_utils.split_bindings(argv[2:])
  files = [a.split("=", 1)[1] for a in rest if a.startswith("--gin_file=")]
  assert len(files) == len(rest), rest
  gin_utils.parse_gin(files, bindings, str(gin_utils.DEFAULT_SEARCH_PATH))


def test_every_command_parses():
  commands = _commands()
  assert sum(c[1] == "train" for c in commands) == len(RUNS)
  assert {c[1] for c in commands} == {"train", "eval", "infer"}
  for argv in commands:
    try:
      _parse(argv)
    finally:
      gin.clear_config()


@pytest.mark.parametrize("argv", [c for c in _commands() if c[1] == "train"],
                         ids=lambda c: next(a for a in c if "MODEL_DIR" in a).split("/")[-1][:-1])
def test_paper_runs_resolve_to_the_original_recipe(argv):
  _parse(argv)
  try:
    trainer = gin.get_configurable(train_config.TrainConfig)()
    data = gin.get_configurable(assemble.DataConfig)()
    model = gin.get_configurable(model_config.HintConfig)()
    init_ckpt = gin.get_bindings(run_train.train)["init_from_checkpoint"]
    init_hf = gin.query_parameter("INIT_FROM_HF_T5/gin.macro.value")
  finally:
    gin.clear_config()
  task, steps, batch, lengths, ckpt, hf, dropout = RUNS[trainer.model_dir[len(FOLDER):]]
  assert (data.mixture_or_task_name, trainer.train_steps, data.batch_size) == (task, steps, batch)
  assert dict(data.task_feature_lengths) == lengths
  assert data.converter == ("concat" if task.endswith("_concat") else "hint")
  assert (init_ckpt, init_hf is not None) == (ckpt, hf)
  if ckpt is not None:  # fine-tuning from hyper-pretraining takes every parameter
    assert trainer.init_patterns == (".*",)
  assert (trainer.optim.name, trainer.optim.learning_rate, trainer.optim.schedule) == (
      "adafactor", 1e-3, "constant")
  assert trainer.optim.clip_grad_norm is None and trainer.mesh.model_parallel == 8
  assert model.t5.d_model == 2048 and model.t5.dtype == "bfloat16"
  assert model.t5.dropout_rate == dropout
  if model.hypernet is not None:
    assert (model.hypernet.pooling_dropout, model.hypernet.generator_dropout) == (dropout, 0.1)
