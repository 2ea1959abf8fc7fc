"""`hint-jax eval` and `hint-jax infer`: restore a trained model, score or decode an eval set."""
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from hint_jax.data import features
from hint_jax.data import vocab as vocab_lib
from hint_jax.models import config as model_config
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.parallel import partitioner
from hint_jax.run import assemble
from hint_jax.training import batches
from hint_jax.training import evaluate as evaluate_lib


def _restore(model: model_config.HintConfig, data: assemble.DataConfig, model_dir: str,
             mesh_cfg: mesh_lib.MeshConfig, step: int | None):
  hint_model = assemble.build_model(model)
  mesh = mesh_lib.build(mesh_cfg)
  evaluation = assemble.eval_set(data, batches.input_shard(mesh))
  params, step = evaluate_lib.restore_params(hint_model, mesh, mesh_cfg.rules,
                                             evaluation.batches[0], model_dir, step)
  return hint_model, evaluation, mesh, params, step


def _normalise(text: str) -> str:
  return " ".join(text.lower().split())


def _predictions(hint_model, evaluation, mesh, rules, params, max_decode_len: int,
                 decode_options: Mapping[str, Any], vocabulary: str | None):
  vocab = vocab_lib.get_vocabulary(vocabulary)
  outputs = evaluate_lib.predict(hint_model, params, evaluation.batches, mesh, rules,
                                 max_decode_len, **dict(decode_options))
  for tokens_BT, ids_B in zip(outputs, evaluation.example_ids):
    for tokens, i in zip(tokens_BT, ids_B):
      if i < 0:
        continue
      ex = evaluation.examples[i]
      yield {"index": int(i), "task": ex.get("task", ""),
             "inputs": ex.get(features.INPUTS + "_pretokenized", ""),
             "target": ex.get(features.TARGETS + "_pretokenized", ""),
             "prediction": vocab.decode(np.asarray(tokens).tolist())}


def evaluate(model: model_config.HintConfig, data: assemble.DataConfig, model_dir: str,
             mesh: mesh_lib.MeshConfig | None = None, checkpoint_step: int | None = None,
             max_decode_len: int | None = None, decode_options: Mapping[str, Any] | None = None,
             vocabulary: str | None = None) -> dict[str, float]:
  """Loss, token accuracy and exact match (generation) of a checkpoint on `data`.

  Writes `MODEL_DIR/eval/<name>_<split>_<step>.json` (process 0) and returns the metrics.
  """
  mesh = mesh or mesh_lib.MeshConfig()
  hint_model, evaluation, mesh_obj, params, step = _restore(model, data, model_dir, mesh,
                                                            checkpoint_step)
  eval_step = partitioner.Partitioner(mesh_obj, mesh.rules).jit(
      evaluate_lib.step_lib.make_eval_step(hint_model))
  result = evaluate_lib.loss_metrics(eval_step, params, evaluation.batches, mesh_obj, mesh.rules)
  preds = list(_predictions(hint_model, evaluation, mesh_obj, mesh.rules, params,
                            max_decode_len or data.task_feature_lengths[features.TARGETS],
                            decode_options or {}, vocabulary))
  hits = [_normalise(p["prediction"]) == _normalise(p["target"]) for p in preds]
  result.update(exact_match=100.0 * float(np.mean(hits)) if hits else float("nan"),
                examples=len(preds), step=step)
  if jax.process_index() == 0:
    out_dir = os.path.join(model_dir, "eval")
    os.makedirs(out_dir, exist_ok=True)
    name = f"{data.mixture_or_task_name}_{data.split}_{step}.json"
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
      json.dump(result, f, indent=1)
  return result


def infer(model: model_config.HintConfig, data: assemble.DataConfig, model_dir: str,
          output_path: str | None = None, mesh: mesh_lib.MeshConfig | None = None,
          checkpoint_step: int | None = None, max_decode_len: int | None = None,
          decode_options: Mapping[str, Any] | None = None, vocabulary: str | None = None) -> str:
  """Decodes every example of `data` and writes one json line per example; returns the path.

  Lines hold `index`, `task`, `inputs`, `target` and `prediction`. With several processes each
  writes `<output_path>.<process>`.
  """
  mesh = mesh or mesh_lib.MeshConfig()
  hint_model, evaluation, mesh_obj, params, step = _restore(model, data, model_dir, mesh,
                                                            checkpoint_step)
  path = output_path or os.path.join(
      model_dir, "infer", f"{data.mixture_or_task_name}_{data.split}_{step}.jsonl")
  if jax.process_count() > 1:
    path = f"{path}.{jax.process_index()}"
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  rows = list(_predictions(hint_model, evaluation, mesh_obj, mesh.rules, params,
                           max_decode_len or data.task_feature_lengths[features.TARGETS],
                           decode_options or {}, vocabulary))
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
  os.replace(tmp, path)  # no partial output on failure
  return path
