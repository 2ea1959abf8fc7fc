"""Pinned defaults: the gin-resolved paper runs carry the original HINT's published settings.

The values come from allenai/hyper-task-descriptions at its last commit: scripts/pretraining/
pretrain.sh + gins/pretrain.gin (hyper-pretraining), scripts/nat_int/ni_train_pretrained*.sh +
gins/ni_train.gin (SNI), gins/partial_train_adafactor_dual.gin (optimiser), gins/hyper_xl.gin
(sizes) and modeling/layers.py (MlpBlock's hidden dropout 0.1, never overridden).
"""
import gin
import pytest

from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import config as model_config
from hint_jax.run import assemble, gin_utils
from hint_jax.training import config as train_config
from hint_jax.training import optim


def _resolve(*files: str) -> tuple[model_config.HintConfig, train_config.TrainConfig,
                                   assemble.DataConfig]:
  gin_utils.parse_gin(list(files), ["MODEL_DIR = '/tmp/m'"], str(gin_utils.DEFAULT_SEARCH_PATH))
  try:
    return (gin.get_configurable(model_config.HintConfig)(),
            gin.get_configurable(train_config.TrainConfig)(),
            gin.get_configurable(assemble.DataConfig)())
  finally:
    gin.clear_config()


def _check_original_optimiser(o: optim.OptimConfig):
  assert (o.name, o.learning_rate, o.schedule) == ("adafactor", 1e-3, "constant")
  assert o.clip_grad_norm is None  # no global gradient-norm clip in the original
  assert (o.decay_rate, o.clipping_threshold, o.multiply_by_parameter_scale, o.factored) == (
      0.8, 1.0, True, True)
  assert o.lr_multipliers == () and o.frozen == ()  # one rate, everything trains


def _check_xl(model: model_config.HintConfig):
  assert (model.t5.d_model, model.t5.num_heads, model.t5.head_dim, model.t5.d_ff) == (
      2048, 32, 64, 5120)
  assert (model.peft.adapter_size, model.peft.prefix_length, model.peft.lora) == (512, 30, None)
  assert model.fusion and model.instruction_encoder == "shared"
  assert (model.z_loss, model.label_smoothing) == (1e-4, 0.0)


def test_hyper_pretraining_defaults():
  model, trainer, data = _resolve("models/hint_xl.gin", "runs/pretrain.gin")
  _check_xl(model)
  assert model.t5.dropout_rate == 0.0  # gins/pretrain.gin: DROPOUT_RATE = 0.0
  assert model.hypernet.pooling_dropout == 0.0  # the pooling attention takes DROPOUT_RATE
  assert model.hypernet.generator_dropout == 0.1  # MlpBlock default, in every phase
  assert (trainer.train_steps, data.batch_size) == (10_000, 1024)
  assert dict(data.task_feature_lengths) == {"instruction": 512, "inputs": 512, "targets": 512}
  assert data.mixture_or_task_name == "hyper_pretrain_text"
  _check_original_optimiser(trainer.optim)


def test_sni_finetuning_defaults():
  model, trainer, data = _resolve("models/hint_xl.gin", "runs/finetune_sni.gin")
  _check_xl(model)
  assert model.t5.dropout_rate == 0.1
  assert model.hypernet.pooling_dropout == 0.1
  assert model.hypernet.generator_dropout == 0.1
  assert (trainer.train_steps, data.batch_size) == (1000, 1024)
  assert dict(data.task_feature_lengths) == {"instruction": 1024, "inputs": 1024,
                                             "targets": 256}
  assert data.mixture_or_task_name == "sni_def_2pos_hint" and data.converter == "hint"
  _check_original_optimiser(trainer.optim)
  # gins/full_restore.gin: the optimiser state comes with the hyper-pretrained checkpoint
  assert trainer.init_optimizer_state


def test_p3_finetuning_defaults():
  model, trainer, data = _resolve("models/hint_xl.gin", "runs/finetune_p3.gin")
  assert (model.t5.dropout_rate, model.hypernet.pooling_dropout,
          model.hypernet.generator_dropout) == (0.1, 0.1, 0.1)
  assert data.batch_size == 2048
  assert dict(data.task_feature_lengths) == {"instruction": 512, "inputs": 1024, "targets": 256}
  _check_original_optimiser(trainer.optim)
  assert trainer.init_optimizer_state


def test_library_defaults_match_the_original():
  hyper = hypernet_config.HypernetConfig()
  assert (hyper.pooling_dropout, hyper.generator_dropout) == (0.1, 0.1)
  assert optim.OptimConfig().clip_grad_norm is None
  with pytest.raises(ValueError, match="pooling_dropout"):
    hypernet_config.HypernetConfig(pooling_dropout=1.0)


def test_tiny_cpu_recipe_keeps_no_dropout_and_its_clip():
  model, trainer, _ = _resolve("runs/tiny_cpu.gin")
  assert (model.t5.dropout_rate, model.hypernet.pooling_dropout,
          model.hypernet.generator_dropout) == (0.0, 0.0, 0.0)
  assert trainer.optim.clip_grad_norm == 1.0


def test_concat_baseline_finetunes_with_backbone_dropout():
  model, _, _ = _resolve("models/concat_xl.gin", "runs/finetune_sni.gin")
  assert model.hypernet is None and model.t5.dropout_rate == 0.1


def test_instruction_in_both_variant():
  model, trainer, data = _resolve("models/hint_xl.gin", "runs/finetune_sni_both.gin")
  assert data.mixture_or_task_name == "sni_def_2pos_both" and data.converter == "hint"
  assert model.fusion and model.hypernet is not None and model.t5.dropout_rate == 0.1
  assert (trainer.train_steps, data.batch_size) == (1000, 1024)
