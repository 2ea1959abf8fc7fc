"""The model interface the trainer, evaluator and server see (HINT and baselines alike)."""
from collections.abc import Mapping
from typing import Any, Protocol

from hint_jax import types


class Model(Protocol):
  """A trainable sequence model. Implementations: `models.hint.HintModel`, the baselines.

  `params` passed to every method is the full, unboxed parameter tree
  `{"backbone": ..., "hypernet": ...}` (the hypernet subtree may be absent for a baseline).
  Batches are dicts of int arrays named as in `hint_jax.data.features`.
  """

  def init(self, rng_init: types.PRNGKey, batch: types.Batch) -> types.PyTree:
    """Fresh parameters, boxed with logical axis metadata (`flax.linen.LogicallyPartitioned`).

    Use `jax.eval_shape(model.init, ...)` for abstract params and `nn.get_partition_spec` for
    their logical axes; `nn.unbox` gives the plain arrays every other method takes.
    """

  def loss_fn(self, params: types.PyTree, batch: types.Batch,
              rng_dropout: types.PRNGKey | None) -> tuple[types.Array, Mapping[str, Any]]:
    """Scalar training loss and auxiliary metrics (sums: `loss_sum`, `weight_sum`, `z_loss`,
    `correct_sum`), with dropout on iff `rng_dropout` is not None."""

  def score_fn(self, params: types.PyTree, batch: types.Batch) -> types.Array:
    """[B] sum of target-token log-likelihoods (weighted), for rank classification."""

  def predict_batch(self, params: types.PyTree, batch: types.Batch, *, max_decode_len: int,
                    **decode_options: Any) -> types.Array:
    """[B, T] decoded token ids (EOS then pad)."""

  def param_labels(self, params: types.PyTree) -> types.PyTree:
    """Same tree as params with a group name per leaf (`'backbone'` or `'hypernet'`)."""
