"""HintModel as the trainer sees it: loss, gradients (and freezing), scores, predictions."""
import dataclasses
import functools

import hint_tiny
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hint_jax.data import features
from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import groups
from hint_jax.training import optim, state

F = features
HINT = hint_tiny.HINT


@pytest.fixture(scope="module")
def setup():
  model, params = hint_tiny.model_and_params(HINT)
  return model, params, hint_tiny.batch()


@pytest.fixture(scope="module")
def loss_and_grads(setup):
  model, params, b = setup
  return jax.jit(jax.value_and_grad(model.loss_fn, has_aux=True))(params, b, None)


def _norms(tree):
  return jax.tree.map(lambda g: float(jnp.sqrt(jnp.sum(g * g))), tree)


def test_loss_and_gradients_reach_hypernet_and_backbone(setup, loss_and_grads):
  _, _, b = setup
  (loss, aux), grads = loss_and_grads
  assert np.isfinite(loss) and float(loss) > 0
  assert {"loss_sum", "weight_sum", "z_loss", "correct_sum"} <= set(aux)
  np.testing.assert_allclose(aux["weight_sum"], np.sum(b[F.DECODER_LOSS_WEIGHTS]))
  norms = _norms(grads)
  # Every generator, every component table and the pooling get gradient...
  for name, sub in norms["hypernet"].items():
    assert min(jax.tree.leaves(sub)) > 0, name
  # ...and so does the backbone, including the encoder used for the instructions.
  assert min(jax.tree.leaves(norms["backbone"]["encoder"])) > 0
  assert min(jax.tree.leaves(norms["backbone"]["decoder"])) > 0


def test_frozen_group_gets_no_gradient_or_update(setup, loss_and_grads):
  model, params, b = setup
  trainable, frozen = state.split_params(
      optim.OptimConfig(frozen=groups.frozen_patterns("hypernet")), params)
  assert set(trainable) == {"hypernet"} and set(frozen) == {"backbone"}
  assert state.merge_params(trainable, frozen).keys() == params.keys()

  def loss(p):
    return model.loss_fn(state.merge_params(p, frozen), b, None)[0]

  # Differentiating w.r.t. the trainable split allocates no backbone gradient at all.
  grads = jax.eval_shape(jax.grad(loss), trainable)
  assert jax.tree.structure(grads) == jax.tree.structure(trainable)
  # The label route (optax.multi_transform over param_labels) leaves the frozen owner unchanged.
  labels = model.param_labels(params)
  tx = optax.multi_transform({"hypernet": optax.sgd(0.1), "backbone": optax.set_to_zero()},
                             labels)
  updates, _ = tx.update(loss_and_grads[1], tx.init(params), params)
  assert max(jax.tree.leaves(_norms(updates["backbone"]))) == 0.0
  assert min(jax.tree.leaves(_norms(updates["hypernet"]))) > 0


def test_dropout_only_with_rng(setup, loss_and_grads):
  _, params, b = setup
  config = hint_tiny.variant(t5=dataclasses.replace(hint_tiny.T5, dropout_rate=0.3),
                             hypernet=hypernet_config.HypernetConfig(generator_dropout=0.3))
  dropout_model, _ = hint_tiny.model_and_params(config)

  @jax.jit
  def losses(rng):
    return (dropout_model.loss_fn(params, b, None)[0], dropout_model.loss_fn(params, b, rng)[0])

  # An RBG key keeps the compile small (threefry bits for every dropout site are slow to build).
  deterministic, dropped = losses(jax.random.key(1, impl="rbg"))
  # Without an rng the dropout model is the deterministic model.
  np.testing.assert_allclose(deterministic, loss_and_grads[0][0], rtol=1e-6)
  assert abs(float(dropped) - float(deterministic)) > 1e-4


def test_score_fn_is_weighted_target_log_likelihood(setup):
  model, params, b = setup
  scores = jax.jit(model.score_fn)(params, b)
  logits = hint_tiny.forward(HINT, params, b)
  log_p = jax.nn.log_softmax(logits)
  want = [sum(float(log_p[i, t, b[F.DECODER_TARGET_TOKENS][i, t]]) * float(w)
              for t, w in enumerate(b[F.DECODER_LOSS_WEIGHTS][i])) for i in range(4)]
  np.testing.assert_allclose(scores, want, rtol=1e-5)
  assert scores.shape == (4,) and np.all(np.asarray(scores) < 0)


def test_predict_batch_greedy_is_consistent_with_teacher_forcing(setup):
  model, params, b = setup
  predict = jax.jit(functools.partial(model.predict_batch, max_decode_len=5))
  tokens = predict(params, b)
  assert tokens.shape == (4, 5) and tokens.dtype == jnp.int32
  # Feeding the prediction back, the forward's argmax reproduces it up to the first EOS.
  teacher = dict(b, **{F.DECODER_INPUT_TOKENS: jnp.pad(tokens[:, :-1], ((0, 0), (1, 0)))})
  argmax = np.asarray(jnp.argmax(hint_tiny.forward(HINT, params, teacher), axis=-1))
  tokens = np.asarray(tokens)
  for i in range(4):
    end = int(np.argmax(tokens[i] == F.EOS_ID)) + 1 if F.EOS_ID in tokens[i] else 5
    np.testing.assert_array_equal(argmax[i, :end], tokens[i, :end])
