"""TrainState (step, trainable and frozen params, optimizer state, RNG) and its constructors."""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from hint_jax import types
from hint_jax.training import optim


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds.

  `trainable` and `frozen` are disjoint nested dicts that together form the model's params
  (`merge_params`); only `trainable` is differentiated and has optimizer state.

  Attributes:
    step: optimizer steps taken (also the number of batches consumed).
    trainable: parameters updated by the optimizer.
    frozen: parameters that never change.
    opt_state: optax state of `trainable`.
    rng: base key; step `n` uses `fold_in(rng, n)` for dropout.
    skipped: batches whose loss or gradient was non-finite and whose update was dropped.
  """
  step: jax.Array
  trainable: types.PyTree
  frozen: types.PyTree
  opt_state: Any
  rng: jax.Array
  skipped: jax.Array

  def params(self) -> types.PyTree:
    return merge_params(self.trainable, self.frozen)


def split_params(cfg: optim.OptimConfig, params: types.PyTree
                 ) -> tuple[types.PyTree, types.PyTree]:
  """(trainable, frozen) nested dicts: a leaf is frozen when its path matches `cfg.frozen`."""
  flat = traverse_util.flatten_dict(params, sep="/", keep_empty_nodes=False)
  frozen = {k: v for k, v in flat.items() if optim.is_frozen(cfg, k)}
  trainable = {k: v for k, v in flat.items() if k not in frozen}
  if not trainable:
    raise ValueError(f"OptimConfig.frozen={cfg.frozen} freezes every parameter")
  return (traverse_util.unflatten_dict(trainable, sep="/"),
          traverse_util.unflatten_dict(frozen, sep="/"))


def merge_params(trainable: types.PyTree, frozen: types.PyTree) -> types.PyTree:
  flat = dict(traverse_util.flatten_dict(trainable, sep="/"))
  flat.update(traverse_util.flatten_dict(frozen, sep="/"))
  return traverse_util.unflatten_dict(flat, sep="/")


def create(cfg: optim.OptimConfig, tx: optax.GradientTransformation, params: types.PyTree,
           rng: jax.Array) -> TrainState:
  """A step-0 state from unboxed params (jit it with out_shardings to build it sharded)."""
  trainable, frozen = split_params(cfg, params)
  return TrainState(step=jnp.zeros((), jnp.int32), trainable=trainable, frozen=frozen,
                    opt_state=tx.init(trainable), rng=rng, skipped=jnp.zeros((), jnp.int32))
