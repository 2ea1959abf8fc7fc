"""Train-step tests: sharded == single device, microbatching == big batch, freezing, NaN guard."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import training_toy_model as toy_model
from flax import traverse_util

from hint_jax import axes
from hint_jax.data import features as F
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.training import batches, loop, optim
from hint_jax.training import config as config_lib


def _cfg(tmp_path, model_parallel=1, rules=axes.STANDARD_RULES, **optim_kw):
  optim_kw.setdefault("name", "adamw")
  optim_kw.setdefault("learning_rate", 1e-2)
  optim_kw.setdefault("clip_grad_norm", 1.0)  # the opt_state indices below assume the clip
  return config_lib.TrainConfig(
      model_dir=str(tmp_path), train_steps=2, optim=optim.OptimConfig(**optim_kw),
      mesh=mesh_lib.MeshConfig(model_parallel=model_parallel, rules=rules))


def _run_steps(cfg, devices, num_steps=2, batch_size=16, num_microbatches=1, batch_fn=None,
               model=None):
  cfg = dataclasses.replace(cfg, num_microbatches=num_microbatches)
  model = model or toy_model.ToyModel()
  batch_fn = batch_fn or (lambda s: toy_model.make_batch(s, batch_size))
  mesh = mesh_lib.build(cfg.mesh, devices)
  example = batch_fn(0)
  setup = loop.build_setup(cfg, model, example, mesh)
  state = loop._fresh_state(cfg, model, setup, example, None)
  step_fn = loop.compile_step(cfg, model, setup)
  metrics = []
  for s in range(num_steps):
    state, m = step_fn(state, batches.to_global(batch_fn(s), setup.batch_shardings))
    metrics.append(jax.device_get(m))
  return state, metrics


def _assert_close(a, b, atol):
  fa, fb = (traverse_util.flatten_dict(x, sep="/") for x in (a, b))
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_allclose(np.asarray(fa[k]), np.asarray(fb[k]), atol=atol, rtol=0, err_msg=k)


@pytest.mark.parametrize("model_parallel,rules", [
    (2, axes.STANDARD_RULES), (4, axes.STANDARD_RULES), (2, axes.FSDP_RULES)],
    ids=["data4xmodel2", "data2xmodel4", "fsdp_data4xmodel2"])
def test_sharded_step_equals_single_device(tmp_path, model_parallel, rules):
  assert jax.device_count() == 8
  cfg = _cfg(tmp_path, model_parallel, rules)
  sharded, m_sharded = _run_steps(cfg, jax.devices())
  single, m_single = _run_steps(_cfg(tmp_path, 1, rules), jax.devices()[:1])
  for path, leaf in traverse_util.flatten_dict(sharded.trainable, sep="/").items():
    assert not leaf.sharding.is_fully_replicated, path  # every toy param has a model axis
  kernel = sharded.trainable["backbone"]["wi"]
  assert kernel.sharding.spec[1] == axes.MODEL  # the mlp axis really is split
  assert len(kernel.sharding.device_set) == 8
  if rules is axes.FSDP_RULES:
    assert kernel.sharding.spec[0] == axes.DATA
  _assert_close(sharded.params(), single.params(), 1e-5)
  _assert_close(sharded.opt_state[1][0].mu, single.opt_state[1][0].mu, 1e-5)
  assert abs(m_sharded[-1]["loss"] - m_single[-1]["loss"]) < 1e-5


def test_batch_is_split_over_data_axis(tmp_path):
  cfg = _cfg(tmp_path, 2)
  mesh = mesh_lib.build(cfg.mesh)
  shardings = batches.feature_shardings(toy_model.make_batch(0), mesh, cfg.mesh.rules)
  arr = batches.to_global(toy_model.make_batch(0), shardings)[F.ENCODER_INPUT_TOKENS]
  assert {s.data.shape[0] for s in arr.addressable_shards} == {4}  # 16 rows over data=4


def test_gradient_accumulation_equals_big_batch(tmp_path):
  cfg = _cfg(tmp_path, 2, name="adafactor", min_dim_size_to_factor=4)
  model = toy_model.ToyModel(dropout=False)  # dropout masks differ per microbatch
  big, m_big = _run_steps(cfg, jax.devices(), num_microbatches=1, model=model)
  acc, m_acc = _run_steps(cfg, jax.devices(), num_microbatches=4, model=model)
  _assert_close(big.params(), acc.params(), 1e-5)
  for a, b in zip(m_big, m_acc):
    assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["grad_norm"] - b["grad_norm"]) < 1e-5
    assert a["accuracy"] == pytest.approx(b["accuracy"])


def test_frozen_backbone_unchanged_and_has_no_optimizer_state(tmp_path):
  cfg = _cfg(tmp_path, 2, frozen=("backbone/.*",))
  state, _ = _run_steps(cfg, jax.devices())
  model = toy_model.ToyModel()
  init = jax.device_get(loop.jax.jit(lambda r: model.init(jax.random.split(r)[0],
                                                           toy_model.make_batch(0)))(
      jax.random.PRNGKey(cfg.seed)))
  init = jax.tree.map(lambda x: x.value, init, is_leaf=lambda x: hasattr(x, "names"))
  assert set(state.trainable) == {"hypernet"} and set(state.frozen) == {"backbone"}
  _assert_close(state.frozen["backbone"], init["backbone"], 0.0)
  with pytest.raises(AssertionError):  # the hypernet did train
    _assert_close(state.trainable["hypernet"], init["hypernet"], 1e-6)
  opt_paths = {jax.tree_util.keystr(p) for p, _ in
               jax.tree_util.tree_flatten_with_path(state.opt_state)[0]}
  assert opt_paths and not any("backbone" in p for p in opt_paths)


def test_non_finite_step_keeps_state_and_counts(tmp_path):
  def batch_fn(s):
    b = toy_model.make_batch(s)
    if s == 1:
      b[F.DECODER_LOSS_WEIGHTS] = np.zeros_like(b[F.DECODER_LOSS_WEIGHTS])
    return b

  class NanModel(toy_model.ToyModel):
    def loss_fn(self, params, batch, rng_dropout):
      loss, aux = super().loss_fn(params, batch, rng_dropout)
      return jnp.where(aux["weight_sum"] > 0, loss, jnp.nan), aux

  cfg = _cfg(tmp_path)
  mesh = mesh_lib.build(cfg.mesh, jax.devices()[:1])
  setup = loop.build_setup(cfg, NanModel(), batch_fn(0), mesh)
  state = loop._fresh_state(cfg, NanModel(), setup, batch_fn(0), None)
  step_fn = loop.compile_step(cfg, NanModel(), setup)
  state, m0 = step_fn(state, batches.to_global(batch_fn(0), setup.batch_shardings))
  before = jax.device_get(state.params())
  state, m1 = step_fn(state, batches.to_global(batch_fn(1), setup.batch_shardings))
  assert bool(m0["finite"]) and not bool(m1["finite"])
  assert int(state.skipped) == 1 and int(state.step) == 2
  _assert_close(jax.device_get(state.params()), before, 0.0)
