"""Host batches -> global arrays: per-feature shardings, each process's input shard, and one
instruction table per data shard x microbatch."""
import dataclasses
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
  data, shards = mesh.shape["data"], input_shard(mesh).count
  batch_sh = sharding.batch_sharding(mesh, rules)
  out = {}
  for key, value in example.items():
    rows = value.shape[0] * shards
    if rows % data == 0:
      out[key] = batch_sh
    elif key == features.HYPER_ENCODER_INPUT_TOKENS and shards == 1:
      out[key] = sharding.replicated(mesh)
    else:
      raise ValueError(f"feature {key!r} has {rows} global rows, not divisible by the "
                       f"data-parallel size {data}; change the batch size or the mesh")
  return out


def to_global(local: HostBatch, shardings: Mapping[str, Any]) -> dict[str, jax.Array]:
  """Global arrays from this process's rows: its `input_shard` block of every global batch.

  Each input shard's task table becomes a block of the global table, so its `task_index`
  values are offset by the rows of the shards before it (a grouped [cells, R, I] table from
  `group_task_rows` has cell-local indices and needs no offset).
  """
  local = dict(local)
  if not local:
    return {}
  shard = input_shard(next(iter(shardings.values())).mesh)
  table, index = features.HYPER_ENCODER_INPUT_TOKENS, features.TASK_INDEX
  if shard.index and table in local and index in local and np.ndim(local[table]) == 2:
    local[index] = local[index] + shard.index * np.shape(local[table])[0]
  out = {}
  for k, v in local.items():
    v = np.asarray(v)
    replicated = shardings[k].is_fully_replicated
    shape = v.shape if replicated else (v.shape[0] * shard.count,) + v.shape[1:]
    out[k] = jax.make_array_from_process_local_data(shardings[k], v, shape)
  return out


def group_task_rows(local: HostBatch, shards: int, microbatches: int) -> dict[str, np.ndarray]:
  """Gives every cell of examples its own instruction table: [cells, R, I] + cell-local indices.

  The local batch splits into cells = `shards` (data shards this process feeds) x
  `microbatches`: example j lies in shard block j // (B / shards) and, as `step._microbatches`
  interleaves, in microbatch j % microbatches; its cell is block * microbatches + microbatch.
  A cell's table holds only the distinct instructions of its own examples (R = min(B / cells,
  table rows) rows; unused rows are zero) and `task_index` points into it. So the hypernetwork
  runs once per task of each microbatch, never over the whole batch's table, and examples only
  read task rows that live on their own data shard (`HintModel` gathers within each group).

  Batches without a task index (the concatenation baseline) are returned unchanged.

  Raises:
    ValueError: the local batch does not split into equal cells.
  """
  table_key, index_key = features.HYPER_ENCODER_INPUT_TOKENS, features.TASK_INDEX
  if index_key not in local:
    return dict(local)
  table_TI, index_B = np.asarray(local[table_key]), np.asarray(local[index_key])
  b, cells = index_B.shape[0], shards * microbatches
  if b % cells:
    raise ValueError(f"the local batch of {b} examples does not split into {shards} data "
                     f"shard(s) x {microbatches} microbatch(es); change the batch size, the "
                     "mesh or num_microbatches")
  rows = min(b // cells, table_TI.shape[0])
  table_CRI = np.zeros((cells, rows, table_TI.shape[1]), table_TI.dtype)
  cell_index_B = np.zeros_like(index_B)
  j = np.arange(b)
  cell_B = (j // (b // shards)) * microbatches + j % microbatches
  for cell in range(cells):
    members = np.flatnonzero(cell_B == cell)
    distinct, local_index = np.unique(index_B[members], return_inverse=True)
    table_CRI[cell, :len(distinct)] = table_TI[distinct]
    cell_index_B[members] = local_index
  return {**local, table_key: table_CRI, index_key: cell_index_B.astype(index_B.dtype)}


@dataclasses.dataclass(frozen=True)
class InputShard:
  """The slice of every global batch this process feeds: block `index` of `count` equal blocks
  of rows. Processes whose devices hold the same data-parallel rows (a model axis spanning
  hosts) share a block and must feed identical rows."""
  index: int = 0
  count: int = 1


def input_shard(mesh: Mesh, process_index: int | None = None) -> InputShard:
  """This process's `InputShard` on `mesh`.

  Raises:
    ValueError: the process's devices do not cover a contiguous run of data rows shared only
      with processes that cover exactly the same run (no equal split of the batch exists).
  """
  grid = np.asarray(mesh.devices)
  rows_of = {}
  for r, row in enumerate(grid):
    for d in row:
      rows_of.setdefault(d.process_index, set()).add(r)
  mine = jax.process_index() if process_index is None else process_index
  runs = {p: sorted(rows) for p, rows in rows_of.items()}
  sizes = {len(r) for r in runs.values()}
  for p, rows in runs.items():
    overlapping = [q for q, other in runs.items() if set(other) & set(rows)]
    if (len(sizes) > 1 or rows != list(range(rows[0], rows[0] + len(rows)))
        or any(runs[q] != rows for q in overlapping)):
      raise ValueError(f"mesh {dict(mesh.shape)}: process {p} holds data rows {rows} "
                       f"(per process: {runs}); every process must hold a contiguous run of "
                       "data rows of one size, shared only with processes holding the same "
                       "run; choose another model_parallel")
  rows = runs[mine]
  return InputShard(index=rows[0] // len(rows), count=grid.shape[0] // len(rows))


def local_data_shards(mesh: Mesh) -> int:
  """How many data-parallel shards (rows of the mesh's `data` axis) this process feeds."""
  return np.asarray(mesh.devices).shape[0] // input_shard(mesh).count
