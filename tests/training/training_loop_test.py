"""Loop tests: bitwise resume, partial restore, config mismatch, non-finite handling, metrics."""
import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import training_toy_model as toy_model
from flax import traverse_util

from hint_jax.data import features as F
from hint_jax.training import checkpoint, loop, optim, partial_restore
from hint_jax.training import config as config_lib


def _cfg(model_dir, steps, **kw):
  return config_lib.TrainConfig(
      model_dir=str(model_dir), train_steps=steps,
      optim=kw.pop("optim", optim.OptimConfig(learning_rate=1e-2, schedule="rsqrt",
                                              warmup_steps=2)),
      checkpoint=checkpoint.CheckpointConfig(period=2, keep=2), log_every=2,
      peak_flops=1e9, progress_bar=False, signature="toy", **kw)


def _flat(tree):
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(jax.device_get(tree),
                                                                  sep="/").items()}


class _Interrupted(Exception):
  pass


def _interrupting_source(at_step):
  data = toy_model.source()

  def source(start, shard):
    for i, b in enumerate(data(start, shard), start):
      if i == at_step:
        raise _Interrupted()
      yield b
  return source


def test_resume_after_interruption_is_bitwise_equal(tmp_path):
  with jax.transfer_guard("disallow"):
    full = loop.train(_cfg(tmp_path / "a", 6), toy_model.ToyModel(), toy_model.source())
    with pytest.raises(_Interrupted):  # dies while fetching the batch of step 6
      loop.train(_cfg(tmp_path / "b", 6), toy_model.ToyModel(), _interrupting_source(5))
  ckpts = checkpoint.Checkpointer(tmp_path / "b" / "checkpoints",
                                  checkpoint.CheckpointConfig(), "unused")
  assert ckpts.all_steps() == [2, 4]
  resumed = loop.train(_cfg(tmp_path / "b", 6), toy_model.ToyModel(), toy_model.source())
  assert int(resumed.step) == 6
  fa, fb = _flat(full.params()), _flat(resumed.params())
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
  for x, y in zip(jax.tree.leaves(full.opt_state), jax.tree.leaves(resumed.opt_state)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  np.testing.assert_array_equal(jax.random.key_data(full.rng), jax.random.key_data(resumed.rng))


def test_partial_restore_takes_backbone_and_keeps_fresh_hypernet(tmp_path):
  donor = loop.train(_cfg(tmp_path / "donor", 2), toy_model.ToyModel(), toy_model.source())
  source = checkpoint.load_params(tmp_path / "donor" / "checkpoints")
  assert "backbone/wi" in source and "hypernet/wi" in source
  cfg = dataclasses.replace(_cfg(tmp_path / "new", 0), seed=7)
  fresh = loop.train(cfg, toy_model.ToyModel(), toy_model.source())
  restored = loop.train(dataclasses.replace(cfg, model_dir=str(tmp_path / "new2")),
                        toy_model.ToyModel(), toy_model.source(), pretrained=source)
  got, want_bb, want_hn = _flat(restored.params()), _flat(donor.params()), _flat(fresh.params())
  for k in got:
    np.testing.assert_array_equal(got[k], want_bb[k] if k.startswith("backbone/")
                                  else want_hn[k], err_msg=k)
  with pytest.raises(ValueError, match="not in the source"):
    partial_restore.restore_matching(restored.params(), {"backbone/wi": source["backbone/wi"]},
                                     ("backbone/.*",))


def test_resume_with_a_different_config_is_refused(tmp_path):
  loop.train(_cfg(tmp_path, 2), toy_model.ToyModel(), toy_model.source())
  other = dataclasses.replace(_cfg(tmp_path, 4), signature="toy d_model=64")
  with pytest.raises(checkpoint.CheckpointMismatchError, match="different config"):
    loop.train(other, toy_model.ToyModel(), toy_model.source())


class _NanAtStep(toy_model.ToyModel):
  def loss_fn(self, params, batch, rng_dropout):
    loss, aux = super().loss_fn(params, batch, rng_dropout)
    return jnp.where(aux["weight_sum"] > 0, loss, jnp.nan), aux


def _poisoned_source(bad_index):
  data = toy_model.source()

  def source(start, shard):
    for i, b in enumerate(data(start, shard), start):
      if i == bad_index:
        b = {**b, F.DECODER_LOSS_WEIGHTS: np.zeros_like(b[F.DECODER_LOSS_WEIGHTS])}
      yield b
  return source


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  with pytest.raises(loop.NonFiniteLossError, match="step 4.*Last good checkpoint: step 2"):
    loop.train(_cfg(tmp_path, 6), _NanAtStep(), _poisoned_source(3))
  ckpts = checkpoint.Checkpointer(tmp_path / "checkpoints", checkpoint.CheckpointConfig(), "x")
  assert ckpts.all_steps() == [2]


def test_skip_nonfinite_counts_and_continues(tmp_path):
  cfg = dataclasses.replace(_cfg(tmp_path, 6), skip_nonfinite=True)
  state = loop.train(cfg, _NanAtStep(), _poisoned_source(3))
  assert int(state.step) == 6 and int(state.skipped) == 1
  assert all(np.isfinite(v).all() for v in _flat(state.params()).values())


def test_metrics_and_eval_are_written_to_tensorboard(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator
  calls = []

  def callback(params, step):
    calls.append(step)
    return {"exact_match": 12.5}

  cfg = dataclasses.replace(_cfg(tmp_path, 4), eval_every=2, num_microbatches=2)
  loop.train(cfg, toy_model.ToyModel(), toy_model.source(),
             eval_data=lambda: (toy_model.make_batch(100 + i) for i in range(2)),
             eval_callbacks=[callback])
  assert calls == [2, 4]
  events = list(pathlib.Path(tmp_path).glob("events.out.tfevents.*"))
  acc = event_accumulator.EventAccumulator(str(events[0]))
  acc.Reload()
  tags = set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"])
  for tag in ("train/loss", "train/accuracy", "train/learning_rate", "train/grad_norm",
              "train/tokens_per_s", "train/step_time", "train/mfu", "eval/loss",
              "eval/accuracy", "eval/exact_match"):
    assert tag in tags, (tag, tags)


def _recording_source(starts, batch_size):
  """toy batches of `batch_size` whose rows are examples [step * B, (step + 1) * B) of one
  stream (as the real pipelines are); records every start step the trainer asks for."""
  def source(start, shard):
    starts.append(start)
    for step in range(start, 10**6):
      rows = [toy_model.make_batch(p // 16, 16)  # example p of the stream
              for p in range(step * batch_size, (step + 1) * batch_size, 16)]
      yield {k: (v if k == F.HYPER_ENCODER_INPUT_TOKENS else np.concatenate(
          [r[k] for r in rows])) for k, v in rows[0].items()}
  return source


def test_resume_with_another_batch_size_continues_at_the_same_example(tmp_path):
  """The data position is kept in examples: 4 steps of 16 then steps of 32 resume at data step
  2 (example 64); a batch size that does not divide it is refused in one line."""
  starts = []
  loop.train(_cfg(tmp_path, 4), toy_model.ToyModel(), _recording_source(starts, 16))
  assert starts == [0]
  with pytest.raises(ValueError, match="cannot resume at global batch size 48: the checkpoint "
                                       "consumed 64 examples at batch size 16"):
    loop.train(_cfg(tmp_path, 6), toy_model.ToyModel(), _recording_source([], 48))
  starts = []
  state = loop.train(_cfg(tmp_path, 6), toy_model.ToyModel(), _recording_source(starts, 32))
  assert int(state.step) == 6 and starts == [4, 2]  # asked at the step, then at the example
  starts = []  # saved at step 6: 64 + 2 x 32 = 128 examples, data step 2 at batch 64
  loop.train(_cfg(tmp_path, 7), toy_model.ToyModel(), _recording_source(starts, 64))
  assert starts == [6, 2]


def test_checkpoint_params_read_straight_into_sharded_targets(tmp_path, monkeypatch):
  """Initialising from another run reads each array into its target sharding through orbax
  (no whole-array host copy per leaf: `CheckpointParams.__getitem__` is never used) and gives
  the values of a host-array restore."""
  loop.train(_cfg(tmp_path / "donor", 2), toy_model.ToyModel(), toy_model.source())
  directory = tmp_path / "donor" / "checkpoints"
  eager = checkpoint.load_params(directory)
  lazy = partial_restore.CheckpointParams(directory)
  assert (lazy.directory, lazy.step) == (str(directory), 2) and set(lazy) == set(eager)
  assert all(lazy.shape(k) == eager[k].shape for k in eager)
  mesh = jax.sharding.Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
  spec = {2: jax.sharding.PartitionSpec("data", "model"), 1: jax.sharding.PartitionSpec("model")}
  targets = traverse_util.unflatten_dict({
      k: jax.ShapeDtypeStruct(v.shape, jnp.bfloat16, sharding=jax.sharding.NamedSharding(
          mesh, spec.get(v.ndim, jax.sharding.PartitionSpec())))
      for k, v in eager.items()}, sep="/")

  def no_host_read(self, path):
    raise AssertionError(f"{path} read to the host")

  monkeypatch.setattr(partial_restore.CheckpointParams, "__getitem__", no_host_read)
  got, chosen = partial_restore.restore_matching(targets, lazy, (".*",))
  assert chosen == sorted(eager)
  for k, v in traverse_util.flatten_dict(got, sep="/").items():
    want = traverse_util.flatten_dict(targets, sep="/")[k]
    assert v.dtype == jnp.bfloat16 and v.sharding == want.sharding, k
    np.testing.assert_array_equal(np.asarray(v), eager[k].astype(jnp.bfloat16), err_msg=k)
  assert any(not v.sharding.is_fully_replicated for v in jax.tree.leaves(got))


def test_batches_of_two_table_sizes_train_like_one(tmp_path):
  """A grouped HINT stream sends a rare batch with a full-size instruction table: the trainer
  compiles that shape too, and unused (all-zero) table rows change nothing."""
  data = toy_model.source()

  def padded(start, shard):
    for i, b in enumerate(data(start, shard), start):
      if i % 2:
        table = b[F.HYPER_ENCODER_INPUT_TOKENS]
        b = {**b, F.HYPER_ENCODER_INPUT_TOKENS: np.concatenate([table, np.zeros_like(table)])}
      yield b

  one = loop.train(_cfg(tmp_path / "a", 5), toy_model.ToyModel(dropout=False), data)
  two = loop.train(_cfg(tmp_path / "b", 5), toy_model.ToyModel(dropout=False), padded)
  fa, fb = _flat(one.params()), _flat(two.params())
  for k in fa:
    np.testing.assert_allclose(fa[k], fb[k], rtol=1e-5, atol=1e-6, err_msg=k)
