"""Pure, jittable train and eval steps over a `Model` (microbatching, non-finite guard)."""
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from hint_jax import types
from hint_jax.data import features
from hint_jax.models import interface
from hint_jax.training import state as state_lib

# Features indexed by `task_index` rather than one row per example. A grouped table
# [cells, R, I] (`batches.group_task_rows`) is split with the examples, each microbatch taking its
# own cells; a flat table [T, I] with a `task_index` is seen whole by every microbatch. Without
# `task_index`, row b belongs to example b.
TABLE_FEATURES = (features.HYPER_ENCODER_INPUT_TOKENS,)
SUM_KEYS = ("loss_sum", "weight_sum", "z_loss", "correct_sum", "cross_entropy_sum")

TrainStep = Callable[[state_lib.TrainState, types.Batch],
                     tuple[state_lib.TrainState, types.Metrics]]


def _microbatches(batch: types.Batch, num: int) -> tuple[dict, dict]:
  """(per-example features as [num, B/num, ...], whole table features). Example (or table
  cell) j -> microbatch j % num.

  Interleaving keeps each microbatch spread evenly over the data-parallel shards, so splitting
  needs no communication.
  """
  split, table = {}, {}
  indexed = features.TASK_INDEX in batch
  for key, value in batch.items():
    if indexed and key in TABLE_FEATURES and value.ndim == 2:
      table[key] = value
      continue
    b = value.shape[0]
    if b % num:
      raise ValueError(f"batch feature {key!r} has {b} rows, not divisible by "
                       f"{num} microbatches")
    split[key] = jnp.swapaxes(value.reshape((b // num, num) + value.shape[1:]), 0, 1)
  return split, table


def _grads(model: interface.Model, trainable, frozen, batch, rng, num_micro: int):
  """(mean loss, gradient of trainable, summed aux) over `num_micro` microbatches.

  With microbatches the gradient is the token-weighted mean sum_i w_i g_i / sum_i w_i, which equals
  the full-batch gradient of a token-mean loss.
  """
  def loss(p, b, r):
    return model.loss_fn(state_lib.merge_params(p, frozen), b, r)

  grad_fn = jax.value_and_grad(loss, has_aux=True)
  if num_micro == 1:
    (value, aux), grads = grad_fn(trainable, batch, rng)
    return value, grads, {k: aux[k] for k in SUM_KEYS if k in aux}

  split, table = _microbatches(batch, num_micro)

  def body(carry, xs):
    i, micro = xs
    (value, aux), g = grad_fn(trainable, {**micro, **table}, jax.random.fold_in(rng, i))
    w = aux["weight_sum"].astype(jnp.float32)
    acc_g, acc_v, acc_aux = carry
    acc_g = jax.tree.map(lambda a, x: a + w * x.astype(jnp.float32), acc_g, g)
    acc_aux = {k: acc_aux[k] + aux[k].astype(jnp.float32) for k in acc_aux}
    return (acc_g, acc_v + w * value, acc_aux), None

  zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), trainable)
  first = {**{k: v[0] for k, v in split.items()}, **table}
  aux_keys = jax.eval_shape(loss, trainable, first, rng)[1]
  aux0 = {k: jnp.zeros((), jnp.float32) for k in SUM_KEYS if k in aux_keys}
  init = (zeros, jnp.zeros((), jnp.float32), aux0)
  (g, v, aux), _ = jax.lax.scan(body, init, (jnp.arange(num_micro), split))
  total = aux["weight_sum"]
  grads = jax.tree.map(lambda x, p: (x / total).astype(p.dtype), g, trainable)
  return v / total, grads, aux


def make_train_step(model: interface.Model, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, num_microbatches: int = 1) -> TrainStep:
  """A pure `train_step(state, batch) -> (state, metrics)`.

  A step whose loss or gradient norm is non-finite leaves the state unchanged except for
  `step` and `skipped` (+1); the host loop decides whether that stops the run.
  """
  def train_step(state: state_lib.TrainState, batch: types.Batch):
    rng_dropout = jax.random.fold_in(state.rng, state.step)
    loss, grads, aux = _grads(model, state.trainable, state.frozen, batch, rng_dropout,
                              num_microbatches)
    grad_norm = optax.global_norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
    trainable = optax.apply_updates(state.trainable, updates)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
    new_state = state.replace(
        step=state.step + 1, trainable=keep(trainable, state.trainable),
        opt_state=keep(opt_state, state.opt_state), skipped=state.skipped + (~ok).astype(jnp.int32))
    weight = jnp.maximum(aux.get("weight_sum", 1.0), 1e-9)
    metrics = {"loss": loss, "grad_norm": grad_norm, "learning_rate": schedule(state.step),
               "finite": ok, "skipped": new_state.skipped, "weight_sum": weight}
    if "correct_sum" in aux:
      metrics["accuracy"] = aux["correct_sum"] / weight
    if "z_loss" in aux:
      metrics["z_loss"] = aux["z_loss"] / weight
    if "cross_entropy_sum" in aux:
      metrics["cross_entropy"] = aux["cross_entropy_sum"] / weight
    return new_state, metrics

  return train_step


def make_eval_step(model: interface.Model) -> Callable[[types.PyTree, types.Batch],
                                                       types.Metrics]:
  """`eval_step(params, batch) -> summed loss metrics` (no dropout)."""
  def eval_step(params: types.PyTree, batch: types.Batch) -> types.Metrics:
    _, aux = model.loss_fn(params, batch, None)
    return {k: jnp.asarray(aux[k], jnp.float32) for k in SUM_KEYS if k in aux}

  return eval_step
