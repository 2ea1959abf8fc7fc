"""Periodic evaluation (loss/accuracy over eval batches plus plug-in callbacks) and prediction."""
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import flax.linen as nn
import jax
import numpy as np
from etils import epath
from jax.sharding import Mesh

from hint_jax import types
from hint_jax.models import interface
from hint_jax.parallel import partitioner, sharding
from hint_jax.training import batches as batches_lib
from hint_jax.training import checkpoint, partial_restore
from hint_jax.training import step as step_lib

HostBatch = Mapping[str, np.ndarray]


class EvalCallback(Protocol):
  """Extra evaluation, e.g. generation + ROUGE-L/EM, or rank classification by scoring."""

  def __call__(self, params: types.PyTree, step: int) -> Mapping[str, float]:
    """Metrics for `params` (sharded, unboxed) at training step `step`."""


def make_evaluator(model: interface.Model, mesh: Mesh, rules: sharding.Rules,
                   eval_data: Callable[[], Iterable[HostBatch]] | None,
                   callbacks: Sequence[EvalCallback] = (), max_batches: int | None = None
                   ) -> Callable[[types.PyTree, int], dict[str, float]] | None:
  """`evaluate(params, step) -> {name: value}` or None when there is nothing to evaluate."""
  if eval_data is None and not callbacks:
    return None
  eval_step = partitioner.Partitioner(mesh, rules).jit(step_lib.make_eval_step(model),
                                                       out_shardings=sharding.replicated(mesh))

  def evaluate(params: types.PyTree, step: int) -> dict[str, float]:
    out: dict[str, float] = {}
    if eval_data is not None:
      out.update(loss_metrics(eval_step, params, eval_data(), mesh, rules, max_batches))
    for callback in callbacks:
      out.update({k: float(v) for k, v in callback(params, step).items()})
    return out

  return evaluate


def _global(local: HostBatch, mesh: Mesh, rules: sharding.Rules) -> dict[str, jax.Array]:
  return batches_lib.to_global(local, batches_lib.feature_shardings(local, mesh, rules))


def loss_metrics(eval_step: Callable, params: types.PyTree, batches: Iterable[HostBatch],
                 mesh: Mesh, rules: sharding.Rules, max_batches: int | None = None
                 ) -> dict[str, float]:
  """Token-weighted loss and accuracy over the batches (sums reduced over all processes)."""
  totals: dict[str, float] = {}
  for i, local in enumerate(batches):
    if max_batches is not None and i >= max_batches:
      break
    sums = jax.device_get(eval_step(params, _global(local, mesh, rules)))
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v)
  weight = max(totals.get("weight_sum", 0.0), 1e-9)
  out = {"loss": totals.get("loss_sum", float("nan")) / weight, "tokens": totals.get(
      "weight_sum", 0.0)}
  if "correct_sum" in totals:
    out["accuracy"] = totals["correct_sum"] / weight
  if "cross_entropy_sum" in totals:
    out["cross_entropy"] = totals["cross_entropy_sum"] / weight
  return out


def predict(model: interface.Model, params: types.PyTree, batches: Iterable[HostBatch],
            mesh: Mesh, rules: sharding.Rules, max_decode_len: int,
            **decode_options: Any) -> Iterator[np.ndarray]:
  """Decoded token ids [B_local, T] for each of this process's batches."""
  rep = sharding.replicated(mesh)
  fn = partitioner.Partitioner(mesh, rules).jit(
      lambda p, b: model.predict_batch(p, b, max_decode_len=max_decode_len, **decode_options),
      out_shardings=rep)
  for local in batches:
    tokens = np.asarray(jax.device_get(fn(params, _global(local, mesh, rules))))
    n = next(iter(local.values())).shape[0]
    start = batches_lib.input_shard(mesh).index * n
    yield tokens[start:start + n]


def restore_params(model: interface.Model, mesh: Mesh, rules: sharding.Rules,
                   example: HostBatch, model_dir: str, step: int | None = None
                   ) -> tuple[types.PyTree, int]:
  """(sharded params, step) of a training run's checkpoint, without its optimizer state."""
  directory = epath.Path(model_dir) / "checkpoints"
  step = checkpoint.latest_step(directory) if step is None else step
  boxed = jax.eval_shape(model.init, jax.eval_shape(jax.random.PRNGKey, 0), example)
  sharding.check_param_axes(boxed, rules)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        nn.unbox(boxed), sharding.logical_shardings(boxed, mesh, rules))
  try:
    params, _ = partial_restore.restore_matching(
        target, partial_restore.CheckpointParams(directory, step), (".*",))
  except ValueError as e:
    raise ValueError(f"checkpoint {directory}/{step} does not fit this model: {e}") from e
  return params, step
