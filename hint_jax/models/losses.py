"""Token cross-entropy with loss weights, z-loss, label smoothing and sum/mean normalisation."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from hint_jax import types


def _smoothing_constant(vocab: int, label_smoothing: float) -> float:
  """Entropy of the smoothed target distribution (subtracted so a perfect fit has loss 0)."""
  if label_smoothing == 0.0:
    return 0.0
  confidence, low = 1.0 - label_smoothing, label_smoothing / (vocab - 1)
  return -(confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))


def token_losses(logits_BTV: types.Array, targets_BT: types.Array, label_smoothing: float = 0.0,
                 z_loss: float = 0.0) -> tuple[types.Array, types.Array, types.Array]:
  """Per-token (total loss, z-loss term, plain cross-entropy), each float32 [B, T].

  total = CE(smoothed targets) - entropy(smoothed targets) + z_loss * logsumexp(logits)**2,
  as in T5X; plain cross-entropy is -log p(target) with no smoothing and no z-loss.
  """
  logits_BTV = logits_BTV.astype(jnp.float32)
  vocab = logits_BTV.shape[-1]
  log_z_BT = jax.nn.logsumexp(logits_BTV, axis=-1)
  log_p_BTV = logits_BTV - log_z_BT[..., None]
  nll_BT = -jnp.take_along_axis(log_p_BTV, targets_BT[..., None].astype(jnp.int32), axis=-1)[..., 0]
  if label_smoothing > 0.0:
    confidence, low = 1.0 - label_smoothing, label_smoothing / (vocab - 1)
    soft_BTV = jax.nn.one_hot(targets_BT, vocab, dtype=jnp.float32) * (confidence - low) + low
    ce_BT = -jnp.sum(soft_BTV * log_p_BTV, axis=-1) - _smoothing_constant(vocab, label_smoothing)
  else:
    ce_BT = nll_BT
  z_BT = z_loss * jnp.square(log_z_BT)
  return ce_BT + z_BT, z_BT, nll_BT


def cross_entropy(logits_BTV: types.Array, targets_BT: types.Array,
                  weights_BT: types.Array | None = None, *, label_smoothing: float = 0.0,
                  z_loss: float = 0.0, normalize: str | float = "mean"
                  ) -> tuple[types.Array, dict[str, types.Array]]:
  """Weighted token cross-entropy (pure, float32).

  Args:
    logits_BTV: [B, T, V] logits (any float dtype; computed in float32).
    targets_BT: [B, T] int target ids.
    weights_BT: [B, T] loss weights; default `targets > 0` (pad 0 ignored).
    label_smoothing: mass spread uniformly over the other V-1 tokens.
    z_loss: coefficient of `logsumexp(logits)**2` (T5X uses 1e-4).
    normalize: "mean" (divide by the weight sum), "sum" (no division) or a constant divisor
      (T5X's loss_normalizing_factor, e.g. batch * target length).

  Returns:
    (loss scalar, sums) with sums `loss_sum` (weighted total loss), `z_loss` (weighted z-loss
    part), `cross_entropy_sum` (weighted plain -log p), `weight_sum`, `correct_sum` (weighted
    argmax hits, for token accuracy).
  """
  if weights_BT is None:
    weights_BT = targets_BT > 0
  weights_BT = jnp.asarray(weights_BT, jnp.float32)
  total_BT, z_BT, nll_BT = token_losses(logits_BTV, targets_BT, label_smoothing, z_loss)
  correct_BT = jnp.argmax(logits_BTV, axis=-1) == targets_BT
  sums = {"loss_sum": jnp.sum(total_BT * weights_BT), "z_loss": jnp.sum(z_BT * weights_BT),
          "cross_entropy_sum": jnp.sum(nll_BT * weights_BT), "weight_sum": jnp.sum(weights_BT),
          "correct_sum": jnp.sum(correct_BT * weights_BT)}
  if normalize == "mean":
    loss = sums["loss_sum"] / jnp.maximum(sums["weight_sum"], 1e-8)
  elif normalize == "sum":
    loss = sums["loss_sum"]
  elif isinstance(normalize, (int, float)) and not isinstance(normalize, bool) and normalize > 0:
    loss = sums["loss_sum"] / normalize
  else:
    raise ValueError(f"normalize must be 'mean', 'sum' or a positive number, got {normalize!r}")
  return loss, sums
