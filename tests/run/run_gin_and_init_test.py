"""gin run files parse into the trainer's configs; backbone initialisation from a HF T5 directory."""
import pathlib

import gin
import jax
import numpy as np
import pytest
from flax import traverse_util

from hint_jax.data import features as F
from hint_jax.models import config as model_config
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.peft import spec
from hint_jax.run import assemble, gin_utils
from hint_jax.t5 import config as t5_config
from hint_jax.t5 import hf
from hint_jax.training import config as train_config
from hint_jax.training import loop, optim, partial_restore

GIN = pathlib.Path(gin_utils.DEFAULT_SEARCH_PATH)
TRAIN_RUNS = [("runs/tiny_model.gin", run) for run in
              ("pretrain.gin", "finetune_sni.gin", "finetune_p3.gin", "tiny_cpu.gin")] + [
                  ("models/hint_base.gin", "finetune_sni.gin"),
                  ("models/t5_base.gin,models/concat.gin", "finetune_sni.gin")]


@pytest.mark.parametrize("path", sorted([*GIN.glob("runs/*.gin"), *GIN.glob("mesh/*.gin")]),
                         ids=lambda p: p.name)
def test_every_gin_file_opens_with_a_comment_and_uses_dynamic_registration(path):
  lines = path.read_text().splitlines()
  assert lines[0].startswith("# ")
  assert "from __gin__ import dynamic_registration" in lines


@pytest.mark.parametrize("model_files,run", TRAIN_RUNS)
def test_training_runs_bind_typed_configs(model_files, run):
  gin_utils.parse_gin([*model_files.split(","), f"runs/{run}", "mesh/fsdp.gin"],
                      ["MODEL_DIR = '/tmp/m'"], str(GIN))
  try:
    assert "hint-jax train" in (GIN / "runs" / run).read_text().split("from __gin__")[0]
    trainer = gin.get_configurable(train_config.TrainConfig)()
    data = gin.get_configurable(assemble.DataConfig)()
    model = gin.get_configurable(model_config.HintConfig)()
  finally:
    gin.clear_config()
  assert isinstance(trainer.optim, optim.OptimConfig) and trainer.model_dir == "/tmp/m"
  assert trainer.mesh.rules[0] and dict(trainer.mesh.rules)["embed"] == "data"
  assert data.batch_size > 0 and set(data.task_feature_lengths) == {
      F.INSTRUCTION, F.INPUTS, F.TARGETS}
  assert isinstance(model, model_config.HintConfig)


def test_backbone_from_hf_t5_directory_and_fresh_hypernet(tmp_path):
  t5 = t5_config.T5Config.preset("tiny")
  cfg = model_config.HintConfig(t5=t5, peft=spec.PeftConfig(adapter_size=4, prefix_length=2),
                                max_instruction_length=8)
  model = assemble.build_model(cfg)
  rng = np.random.default_rng(0)
  tok = lambda *s: rng.integers(3, t5.vocab_size, s).astype(np.int32)
  example = {F.HYPER_ENCODER_INPUT_TOKENS: tok(8, 8), F.TASK_INDEX: np.arange(8, dtype=np.int32),
             F.ENCODER_INPUT_TOKENS: tok(8, 6), F.DECODER_INPUT_TOKENS: tok(8, 4),
             F.DECODER_TARGET_TOKENS: tok(8, 4), F.DECODER_LOSS_WEIGHTS: np.ones((8, 4), np.int32)}
  tcfg = train_config.TrainConfig(model_dir=str(tmp_path / "run"), train_steps=0)
  setup = loop.build_setup(tcfg, model, example, mesh_lib.build(tcfg.mesh))
  fresh = loop._fresh_state(tcfg, model, setup, example, None).params()
  want = traverse_util.flatten_dict(jax.device_get(fresh), sep="/")
  donor = {k: v + 0.5 for k, v in want.items() if k.startswith("backbone/")}
  hf.save_hf_t5(t5, traverse_util.unflatten_dict(
      {k[len("backbone/"):]: v for k, v in donor.items()}, sep="/"), tmp_path / "hf")
  pretrained = assemble.pretrained_params(str(tmp_path / "hf"), None)
  restored, paths = partial_restore.restore_matching(fresh, pretrained, tcfg.init_patterns)
  assert paths == sorted(donor) and any(k.startswith("hypernet/") for k in want)
  got = traverse_util.flatten_dict(jax.device_get(restored), sep="/")
  for k, v in got.items():
    np.testing.assert_array_equal(v, donor[k] if k.startswith("backbone/") else want[k], err_msg=k)
