"""Token cross-entropy, z-loss, label smoothing and normalisation against numpy references."""
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.models import losses

RNG = np.random.default_rng(0)
LOGITS = (RNG.standard_normal((2, 5, 7)) * 3).astype(np.float32)
TARGETS = RNG.integers(1, 7, (2, 5))
TARGETS[1, 3:] = 0


def _log_softmax(x):
  x = x.astype(np.float64)
  return x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(-1,
                                                                                         keepdims=True)


def _reference(label_smoothing, z_loss, weights):
  logp = _log_softmax(LOGITS)
  vocab = LOGITS.shape[-1]
  conf, low = 1 - label_smoothing, label_smoothing / (vocab - 1)
  soft = np.full(LOGITS.shape, low)
  np.put_along_axis(soft, TARGETS[..., None], conf, axis=-1)
  const = -(conf * np.log(conf) + (vocab - 1) * low * np.log(low + 1e-20)) if label_smoothing else 0
  log_z = np.log(np.exp(LOGITS.astype(np.float64)).sum(-1))
  per_token = -(soft * logp).sum(-1) - const + z_loss * log_z**2
  nll = -np.take_along_axis(logp, TARGETS[..., None], -1)[..., 0]
  correct = (LOGITS.argmax(-1) == TARGETS)
  return ((per_token * weights).sum(), (z_loss * log_z**2 * weights).sum(), (nll * weights).sum(),
          weights.sum(), (correct * weights).sum())


@pytest.mark.parametrize("label_smoothing,z_loss", [(0.0, 0.0), (0.1, 1e-4), (0.2, 0.0)])
def test_sums_match_numpy(label_smoothing, z_loss):
  weights = (TARGETS > 0).astype(np.float64)
  loss, sums = losses.cross_entropy(jnp.asarray(LOGITS), jnp.asarray(TARGETS),
                                    label_smoothing=label_smoothing, z_loss=z_loss)
  ref = _reference(label_smoothing, z_loss, weights)
  names = ("loss_sum", "z_loss", "cross_entropy_sum", "weight_sum", "correct_sum")
  for name, value in zip(names, ref):
    np.testing.assert_allclose(sums[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
  np.testing.assert_allclose(loss, ref[0] / ref[3], rtol=1e-5)
  assert loss.dtype == jnp.float32


def test_custom_weights_and_normalisation():
  weights = RNG.uniform(0, 2, TARGETS.shape)
  ref = _reference(0.0, 0.0, weights)
  logits, targets = jnp.asarray(LOGITS, jnp.bfloat16), jnp.asarray(TARGETS)
  for normalize, divisor in (("sum", 1.0), ("mean", ref[3]), (4.0, 4.0)):
    loss, _ = losses.cross_entropy(jnp.asarray(LOGITS), targets, jnp.asarray(weights),
                                   normalize=normalize)
    np.testing.assert_allclose(loss, ref[0] / divisor, rtol=1e-5)
  loss_bf16, _ = losses.cross_entropy(logits, targets, jnp.asarray(weights), normalize="sum")
  assert loss_bf16.dtype == jnp.float32
  with pytest.raises(ValueError, match="normalize"):
    losses.cross_entropy(logits, targets, normalize="tokens")


def test_perfect_prediction_with_smoothing_has_zero_loss():
  vocab, smoothing = 7, 0.1
  conf, low = 1 - smoothing, smoothing / (vocab - 1)
  target_logits = np.log(np.where(np.eye(vocab)[TARGETS] > 0, conf, low))
  loss, _ = losses.cross_entropy(jnp.asarray(target_logits), jnp.asarray(TARGETS),
                                 label_smoothing=smoothing)
  assert abs(float(loss)) < 1e-5
