"""gin_configs/models: every size and variant parses into the HintConfig it documents."""
import dataclasses
import pathlib

import gin
import pytest

from hint_jax.models import baseline, groups, hint
from hint_jax.models import config as model_config
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config

GIN = pathlib.Path(__file__).resolve().parents[2] / "gin_configs"
SIZES = ("tiny", "small", "base", "large", "xl", "xxl")
PUBLISHED = {"base": (64, 30), "xl": (512, 30), "xxl": (512, 30), "tiny": (7, 2)}


def _model(*files: str) -> model_config.HintConfig:
  gin.clear_config()
  gin.add_config_file_search_path(str(GIN))
  try:
    gin.parse_config_files_and_bindings([str(GIN / f) for f in files], [], finalize_config=True)
    return gin.get_configurable(model_config.HintConfig)()
  finally:
    gin.clear_config()


def _preset(size: str) -> t5_config.T5Config:
  """The T5 preset as the gin files set it: XL and XXL rematerialise and scan every layer
  (what fits them on pod slices, docs/tpu_pods.md)."""
  if size in ("xl", "xxl"):
    return t5_config.T5Config.preset(size, remat_policy="full", scan_layers=True)
  return t5_config.T5Config.preset(size)


@pytest.mark.parametrize("size", SIZES)
def test_hint_sizes(size):
  cfg = _model(f"models/hint_{size}.gin")
  assert cfg.t5 == _preset(size)
  assert (cfg.peft.adapter_size, cfg.peft.prefix_length) == PUBLISHED.get(size, (64, 30))
  assert cfg.peft.lora is None and cfg.fusion and cfg.instruction_encoder == "shared"
  assert cfg.hypernet is not None and cfg.hypernet.generator_dropout == 0.1
  # The generated shapes follow from the config alone (no arrays are built).
  shapes = spec.task_param_shapes(cfg.peft, cfg.t5.dims, 1)
  assert shapes.encoder.adapter.down == (1, cfg.t5.num_encoder_layers, cfg.t5.d_model,
                                         cfg.peft.adapter_size)


@pytest.mark.parametrize("size", SIZES)
def test_concat_sizes(size):
  cfg = _model(f"models/concat_{size}.gin")
  assert cfg == baseline.concat_config(_preset(size))
  assert cfg == _model(f"models/t5_{size}.gin", "models/concat.gin")


def test_concat_baseline_and_ablations_match_the_python_variants():
  base = _model("models/hint_base.gin")
  concat = _model("models/t5_base.gin", "models/concat.gin")
  assert concat == baseline.variant(base, "concat") == baseline.concat_config(base.t5)
  for name in ("no_fusion", "fusion_only", "adapters_only", "prefixes_only", "lora_only"):
    got = _model("models/hint_base.gin", f"models/ablation_{name}.gin")
    assert got == baseline.variant(base, name), name


def test_tiny_model_builds():
  cfg = _model("models/hint_tiny.gin")
  assert cfg.max_instruction_length == 64
  assert hint.HintModel(cfg).hypernet is not None


def test_freeze_backbone_file_matches_the_groups_preset():
  gin.clear_config()
  try:
    gin.parse_config_files_and_bindings([str(GIN / "models/freeze_backbone.gin")], [],
                                        finalize_config=False)
    frozen = gin.query_parameter("optim.OptimConfig.frozen")
  finally:
    gin.clear_config()
  assert tuple(frozen) == groups.frozen_patterns("hypernet")


def test_ia3_ablation_file():
  """IA3 vectors only (keys, values, FFN hidden), on top of a HINT model file."""
  base = _model("models/hint_base.gin")
  got = _model("models/hint_base.gin", "models/ablation_ia3_only.gin")
  assert got == dataclasses.replace(base, peft=spec.PeftConfig(
      adapter_size=None, prefix_length=None, lora=None, ia3=spec.Ia3Config()))
  assert spec.task_param_shapes(got.peft, got.t5.dims, 1).encoder.ia3.mlp == (
      1, got.t5.num_encoder_layers, got.t5.d_ff)
