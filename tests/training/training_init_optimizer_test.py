"""Fine-tuning from another run takes its optimizer state (`TrainConfig.init_optimizer_state`).

The original restores the whole train state from hyper-pretraining, Adafactor statistics
included (allenai/hyper-task-descriptions gins/full_restore.gin); a mismatched optimizer, a
partial init or another layer layout falls back to a fresh optimizer state with one log line.
"""
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import training_toy_model as toy_model
from flax import traverse_util

from hint_jax import axes
from hint_jax.training import checkpoint, loop, optim
from hint_jax.training import config as config_lib

ADAFACTOR = optim.OptimConfig(learning_rate=1e-2, min_dim_size_to_factor=8)  # v_row/v_col
ADAMW = optim.OptimConfig(name="adamw", learning_rate=1e-2)
LOG = "hint_jax.training.loop"


def _cfg(model_dir, steps, opt=ADAFACTOR, **kw):
  return config_lib.TrainConfig(
      model_dir=str(model_dir), train_steps=steps, optim=opt,
      checkpoint=checkpoint.CheckpointConfig(period=0, keep=1, async_save=False),
      log_every=1, peak_flops=1e9, progress_bar=False, signature="toy", **kw)


def _leaves(tree):
  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def _schedule_paths(opt_state) -> list[str]:
  """`_leaves` keys of the learning-rate schedule's counts."""
  nodes = jax.tree_util.tree_flatten_with_path(
      opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByScheduleState))[0]
  return [jax.tree_util.keystr(p) + ".count" for p, x in nodes
          if isinstance(x, optax.ScaleByScheduleState)]


def _schedule_count(opt_state) -> int:
  (path,) = _schedule_paths(opt_state)
  return int(_leaves(opt_state)[path])


def _donor(tmp_path, opt, model=None, steps=3):
  state = loop.train(_cfg(tmp_path / "donor", steps, opt), model or toy_model.ToyModel(),
                     toy_model.source())
  return state, checkpoint.load_params(tmp_path / "donor" / "checkpoints")


def _finetune(tmp_path, name, steps, pretrained, opt=ADAFACTOR, model=None, **kw):
  return loop.train(_cfg(tmp_path / name, steps, opt, init_patterns=(".*",), seed=5, **kw),
                    model or toy_model.ToyModel(), toy_model.source(), pretrained=pretrained)


@pytest.mark.parametrize("opt", [ADAFACTOR, ADAMW], ids=["adafactor", "adamw"])
def test_finetune_restores_the_optimizer_statistics_exactly(tmp_path, opt, caplog):
  donor, pretrained = _donor(tmp_path, opt)
  assert isinstance(pretrained, checkpoint.PretrainedParams) and pretrained.step == 3
  with caplog.at_level(logging.INFO, logger=LOG):
    state = _finetune(tmp_path, "ft0", 0, pretrained, opt)
  assert [r.getMessage() for r in caplog.records if "optimizer state" in r.getMessage()] == [
      (f"init (fresh run): optimizer state from checkpoint {tmp_path}/donor/checkpoints step 3 "
       "(statistics and their step counts; this run's step and learning-rate schedule start "
       "at 0)")]
  want, got = _leaves(donor.opt_state), _leaves(state.opt_state)
  assert want.keys() == got.keys()
  stats = [k for k in want if want[k].size > 1]
  assert len(stats) >= 14 and all(np.any(want[k] != 0) for k in stats)  # real statistics
  if opt.name == "adafactor":
    assert any(".v_row" in k for k in stats) and any(".v_col" in k for k in stats)
  else:
    assert any(".mu" in k for k in stats) and any(".nu" in k for k in stats)
  (schedule,) = _schedule_paths(donor.opt_state)
  assert int(want[schedule]) == 3
  for k in want:
    if k != schedule:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  assert _schedule_count(state.opt_state) == 0 and int(state.step) == 0
  for k, v in traverse_util.flatten_dict(jax.device_get(donor.params()), sep="/").items():
    np.testing.assert_array_equal(
        traverse_util.flatten_dict(jax.device_get(state.params()), sep="/")[k], v, err_msg=k)
  # the statistics' own counts continue (Adafactor decay, Adam bias correction)
  counts = [k for k in want if k.endswith(".count")]
  assert sorted(int(got[k]) for k in counts) == [0, 3]

  stepped = _finetune(tmp_path, "ft1", 1, pretrained, opt)
  assert int(stepped.step) == 1 and _schedule_count(stepped.opt_state) == 1
  assert sorted(int(v) for k, v in _leaves(stepped.opt_state).items()
                if k.endswith(".count")) == [1, 4]


def test_mismatched_optimizer_falls_back_to_fresh_with_one_log_line(tmp_path, caplog):
  _, pretrained = _donor(tmp_path, ADAFACTOR, steps=1)
  with caplog.at_level(logging.INFO, logger=LOG):
    state = _finetune(tmp_path, "adam", 0, pretrained, ADAMW)
  lines = [r.getMessage() for r in caplog.records if "optimizer state" in r.getMessage()]
  assert len(lines) == 1 and lines[0].startswith("init (fresh run): fresh optimizer state: ")
  assert "does not match this run's" in lines[0]
  assert "checkpoint 'optim=adafactor" in lines[0] and "this run: 'optim=adamw" in lines[0]
  fresh = _finetune(tmp_path, "adam_fresh", 0, pretrained, ADAMW, init_optimizer_state=False)
  want, got = _leaves(fresh.opt_state), _leaves(state.opt_state)
  assert want.keys() == got.keys()
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  assert all(int(v) == 0 for k, v in got.items() if k.endswith(".count"))


def test_parameters_only_and_partial_init_keep_a_fresh_optimizer_state(tmp_path, caplog):
  donor, pretrained = _donor(tmp_path, ADAFACTOR, steps=2)
  with caplog.at_level(logging.INFO, logger=LOG):
    only = _finetune(tmp_path, "params_only", 0, pretrained, init_optimizer_state=False)
    partial = loop.train(_cfg(tmp_path / "partial", 0), toy_model.ToyModel(),
                         toy_model.source(), pretrained=pretrained)  # backbone/.* only
    plain = _finetune(tmp_path, "plain_dict", 0, dict(pretrained))
  lines = [r.getMessage() for r in caplog.records if "optimizer state" in r.getMessage()]
  assert len(lines) == 3 and all("fresh optimizer state" in x for x in lines), lines
  assert "init_optimizer_state is off" in lines[0]
  assert "leave 3 of 7 trainable parameters fresh (e.g. hypernet/embedding)" in lines[1]
  assert "carry no optimizer state" in lines[2]
  want = traverse_util.flatten_dict(jax.device_get(donor.params()), sep="/")
  for state in (only, plain):
    got = traverse_util.flatten_dict(jax.device_get(state.params()), sep="/")
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  for state in (only, partial, plain):
    stats = _leaves(state.opt_state)
    assert all(not np.any(v) for v in stats.values())  # zero statistics and counts


class _Layered(toy_model.ToyModel):
  """The toy model with two extra backbone 'layers', unrolled (`layers_0`, `layers_1`) or
  stacked (`layers`, [2, ...]) as `T5Config.scan_layers` lays them out."""

  def __init__(self, scanned: bool):
    super().__init__()
    self.scanned = scanned

  def init(self, rng_init, batch):
    params = dict(super().init(rng_init, batch))
    w = jax.random.normal(rng_init, (2, toy_model.EMBED, toy_model.MLP)) * 0.1
    if self.scanned:
      extra = {"layers": {"w": nn.LogicallyPartitioned(w, (axes.LAYERS, axes.EMBED, axes.MLP))}}
    else:
      extra = {f"layers_{i}": {"w": nn.LogicallyPartitioned(w[i], (axes.EMBED, axes.MLP))}
               for i in range(2)}
    params["backbone"] = {**params["backbone"], **extra}
    return params

  def loss_fn(self, params, batch, rng_dropout):
    backbone = dict(params["backbone"])
    layers = [backbone.pop(k) for k in sorted(backbone) if k.startswith("layers")]
    loss, aux = super().loss_fn({**params, "backbone": backbone}, batch, rng_dropout)
    return loss + 1e-2 * sum(jnp.sum(x["w"] ** 2) for x in layers), aux


def test_other_layer_layout_converts_params_and_refuses_optimizer_state(tmp_path, caplog):
  donor, pretrained = _donor(tmp_path, ADAFACTOR, _Layered(scanned=False), steps=1)
  assert "backbone/layers_1/w" in pretrained
  with caplog.at_level(logging.INFO, logger=LOG):
    same = _finetune(tmp_path, "unrolled", 0, pretrained, model=_Layered(scanned=False))
    scanned = _finetune(tmp_path, "scanned", 0, pretrained, model=_Layered(scanned=True))
  lines = [r.getMessage() for r in caplog.records if "optimizer state" in r.getMessage()]
  assert len(lines) == 2 and "optimizer state from checkpoint" in lines[0]
  assert lines[1].startswith("init (fresh run): fresh optimizer state: ")
  assert "other layout (T5Config.scan_layers; e.g. backbone/layers/w)" in lines[1]
  assert any(np.any(v) for k, v in _leaves(same.opt_state).items() if "layers_0" in k)
  assert all(not np.any(v) for v in _leaves(scanned.opt_state).values())
  stacked = np.asarray(scanned.params()["backbone"]["layers"]["w"])
  donor_bb = jax.device_get(donor.params())["backbone"]
  np.testing.assert_array_equal(stacked, np.stack([donor_bb[f"layers_{i}"]["w"]
                                                   for i in range(2)]))


def test_init_optimizer_state_is_on_by_default():
  assert config_lib.TrainConfig(model_dir="/tmp/x", train_steps=1).init_optimizer_state
