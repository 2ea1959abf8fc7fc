"""Optimizer tests: schedules, T5X Adafactor settings, AdamW, per-group rates, clipping, config errors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hint_jax.training import optim


def _lr(cfg, step):
  return float(optim.make_schedule(cfg)(jnp.asarray(step)))


def test_schedules():
  assert _lr(optim.OptimConfig(learning_rate=0.1), 1234) == pytest.approx(0.1)
  rsqrt = optim.OptimConfig(learning_rate=0.01, schedule="rsqrt", warmup_steps=100)
  assert _lr(rsqrt, 10) == pytest.approx(0.01) and _lr(rsqrt, 400) == pytest.approx(0.005)
  lin = optim.OptimConfig(learning_rate=1.0, schedule="linear", warmup_steps=10,
                          decay_steps=110, end_lr_fraction=0.1)
  assert [_lr(lin, s) for s in (0, 5, 10, 60, 110, 500)] == pytest.approx(
      [0.0, 0.5, 1.0, 0.55, 0.1, 0.1])
  cos = optim.OptimConfig(learning_rate=1.0, schedule="cosine", warmup_steps=10,
                          decay_steps=110, end_lr_fraction=0.0)
  assert [_lr(cos, s) for s in (5, 10, 60, 110)] == pytest.approx([0.5, 1.0, 0.5, 0.0], abs=1e-6)


def test_adafactor_is_t5x_style():
  cfg = optim.OptimConfig(name="adafactor", learning_rate=1e-2, clip_grad_norm=None)
  tx, _ = optim.make_optimizer(cfg)
  params = {"big": jnp.ones((256, 384)), "small": jnp.ones((4, 3)), "bias": jnp.ones((7,))}
  state = tx.init(params)
  factored = next(s for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "v_row"))
              if hasattr(s, "v_row"))
  assert factored.v_row["big"].shape == (256,) and factored.v_col["big"].shape == (384,)
  assert factored.v["small"].shape == (4, 3)  # too small to factor: full second moment
  # Parameter scaling: the update is proportional to the parameter's RMS.
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)
  u1, _ = tx.update(grads, state, params)
  u10, _ = tx.update(grads, state, jax.tree.map(lambda p: 10 * p, params))
  np.testing.assert_allclose(u10["big"], 10 * u1["big"], rtol=1e-5)
  # Update clipping at 1.0 with decay 0.8: a first step moves each weight by exactly lr * RMS(p).
  np.testing.assert_allclose(np.abs(u1["big"]), 1e-2, rtol=1e-4)


def test_adamw_matches_optax_and_frozen_groups_scale():
  cfg = optim.OptimConfig(name="adamw", learning_rate=1e-3, weight_decay=0.01, clip_grad_norm=None,
                          lr_multipliers=(("hypernet/.*", 0.5),))
  tx, _ = optim.make_optimizer(cfg)
  params = {"backbone": {"w": jnp.arange(6.0).reshape(2, 3)},
            "hypernet": {"w": jnp.arange(6.0).reshape(2, 3)}}
  grads = jax.tree.map(lambda p: jnp.sin(p) + 0.1, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  ref = optax.adamw(1e-3, weight_decay=0.01)
  want, _ = ref.update(grads, ref.init(params), params)
  np.testing.assert_allclose(updates["backbone"]["w"], want["backbone"]["w"], rtol=1e-6)
  np.testing.assert_allclose(updates["hypernet"]["w"], 0.5 * want["hypernet"]["w"], rtol=1e-6)
  assert optim.lr_multiplier(cfg, "hypernet/pool/kernel") == 0.5
  assert optim.lr_multiplier(cfg, "backbone/x") == 1.0


def test_gradient_clipping():
  def update(clip, scale):
    # eps=1 makes Adam sensitive to the gradient's scale, so clipping becomes visible.
    cfg = optim.OptimConfig(name="adamw", learning_rate=1.0, clip_grad_norm=clip, eps=1.0)
    tx, _ = optim.make_optimizer(cfg)
    params = {"w": jnp.zeros((4,))}
    grads = {"w": scale * jnp.array([1.0, -2.0, 3.0, 0.5])}
    return tx.update(grads, tx.init(params), params)[0]["w"]

  np.testing.assert_allclose(update(1.0, 10.0), update(1.0, 100.0), rtol=1e-6)
  assert not np.allclose(update(None, 10.0), update(None, 100.0), rtol=1e-3)


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "sgd"}, "name"), ({"schedule": "step"}, "schedule"),
    ({"schedule": "cosine", "decay_steps": 10, "warmup_steps": 10}, "decay_steps"),
    ({"frozen": ("backbone/(",)}, "unterminated")])
def test_bad_config_is_rejected(kwargs, match):
  with pytest.raises(Exception, match=match):
    optim.OptimConfig(**kwargs)
