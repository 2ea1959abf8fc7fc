"""Host batches -> global arrays: per-feature shardings and per-process task-table offsets."""
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from hint_jax.data import features
from hint_jax.parallel import sharding

HostBatch = Mapping[str, np.ndarray]


def feature_shardings(example: HostBatch, mesh: Mesh, rules: sharding.Rules) -> dict[str, Any]:
  """Leading-axis data sharding for every feature.

  The task-instruction table is the exception when one process feeds the whole mesh and its row
  count does not divide the data-parallel size: then it is replicated.

  Raises:
    ValueError: a per-example feature (or, across processes, the table) does not divide.
  """
  data = mesh.shape["data"]
  batch_sh = sharding.batch_sharding(mesh, rules)
  out = {}
  for key, value in example.items():
    rows = value.shape[0] * jax.process_count()
    if rows % data == 0:
      out[key] = batch_sh
    elif key == features.HYPER_ENCODER_INPUT_TOKENS and jax.process_count() == 1:
      out[key] = sharding.replicated(mesh)
    else:
      raise ValueError(f"feature {key!r} has {rows} global rows, not divisible by the "
                       f"data-parallel size {data}; change the batch size or the mesh")
  return out


def to_global(local: HostBatch, shardings: Mapping[str, Any]) -> dict[str, jax.Array]:
  """Global arrays from this process's rows.

  Each process's task table becomes a block of the global table, so its `task_index` values
  are offset by the rows of the processes before it.
  """
  local = dict(local)
  table, index = features.HYPER_ENCODER_INPUT_TOKENS, features.TASK_INDEX
  if jax.process_count() > 1 and table in local and index in local:
    local[index] = local[index] + jax.process_index() * local[table].shape[0]
  return {k: jax.make_array_from_process_local_data(shardings[k], np.asarray(v))
          for k, v in local.items()}
