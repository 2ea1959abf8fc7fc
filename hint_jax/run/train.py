"""`hint-jax train`: assemble model, data and TrainConfig from gin and run the training loop."""
import dataclasses
import logging
from collections.abc import Callable, Sequence

import jax

from hint_jax.data import pipeline
from hint_jax.models import config as model_config
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.parallel import partitioner as partitioner_lib
from hint_jax.run import assemble, gin_utils
from hint_jax.serving import checkpoint_io
from hint_jax.training import batches, evaluate, loop
from hint_jax.training import config as train_config

_LOG = logging.getLogger(__name__)
CallbackFactory = Callable[..., evaluate.EvalCallback]


def train(model: model_config.HintConfig, data: assemble.DataConfig,
          trainer: train_config.TrainConfig, eval_data: assemble.DataConfig | None = None,
          init_from_hf_t5: str | None = None, init_from_checkpoint: str | None = None,
          eval_callbacks: Sequence[CallbackFactory] = (),
          init_from_hf_bert: str | None = None) -> int:
  """Trains `model` on `data` (gin binds every argument; see gin_configs/runs/*.gin).

  Args:
    model: the HINT model or baseline.
    data: training mixture, lengths, batch size.
    trainer: steps, optimizer, mesh, checkpoints, model_dir.
    eval_data: evaluation set for periodic eval loss/accuracy (optional).
    init_from_hf_t5: Hugging Face T5 directory to take `trainer.init_patterns` from.
    init_from_checkpoint: another run's directory (or its checkpoints directory), same use.
    init_from_hf_bert: Hugging Face BERT directory (e.g. all-MiniLM-L6-v2) for a model with
      `instruction_encoder='bert'`; its weights are offered as
      `hypernet/instruction_encoder/encoder/...` (models/instruction_encoder_minilm.gin).
    eval_callbacks: factories `f(model, partitioner) -> EvalCallback` for generation metrics
      (ROUGE-L/EM, rank classification); the callback gets the sharded params and the step.

  Returns:
    The final step.
  """
  _preflight(model, data, trainer)
  if jax.process_index() == 0:
    path = gin_utils.write_config(trainer.model_dir)
    _LOG.info("operative config written to %s", path)
  hint_model = assemble.build_model(model)
  trainer = _with_signature(trainer, model)
  mesh = mesh_lib.build(trainer.mesh)
  shard = batches.input_shard(mesh)
  partitioner = partitioner_lib.Partitioner(mesh, trainer.mesh.rules)
  evaluation = assemble.eval_set(eval_data, shard) if eval_data is not None else None
  state = loop.train(
      trainer, hint_model, assemble.train_source(data),
      eval_data=(lambda: iter(evaluation)) if evaluation is not None else None,
      eval_callbacks=[factory(hint_model, partitioner) for factory in eval_callbacks],
      pretrained=assemble.pretrained_params(init_from_hf_t5, init_from_checkpoint,
                                            tuple(trainer.init_patterns), init_from_hf_bert,
                                            model.bert),
      extra_meta={"gin_config": gin_utils.config_str(),
                  # lets `Predictor.from_checkpoint` (serving, no gin) rebuild the model
                  checkpoint_io.META_KEY: checkpoint_io.config_to_dict(model),
                  "input_contract": model.input_contract(),
                  "mixture_or_task_name": data.mixture_or_task_name})
  return int(jax.device_get(state.step))


def _preflight(model: model_config.HintConfig, data: assemble.DataConfig,
               trainer: train_config.TrainConfig) -> None:
  """Fails on a bad task name, vocabulary, mesh or batch size before anything is written to
  model_dir."""
  names = pipeline.available_names()
  if data.mixture_or_task_name not in names:
    raise ValueError(f"unknown task or mixture {data.mixture_or_task_name!r}; available: "
                     f"{', '.join(names)}")
  assemble.check_vocabulary(model, data.mixture_or_task_name)
  assemble.check_instruction_vocab(model, data)
  parallel = mesh_lib.data_parallel_size(mesh_lib.build(trainer.mesh))
  if data.batch_size % parallel:
    raise ValueError(f"BATCH_SIZE={data.batch_size} is not divisible by the data-parallel size "
                     f"{parallel}; change the batch size or the mesh")


def _with_signature(trainer: train_config.TrainConfig, model: model_config.HintConfig
                    ) -> train_config.TrainConfig:
  return dataclasses.replace(trainer, signature=trainer.signature or assemble.signature(model))
