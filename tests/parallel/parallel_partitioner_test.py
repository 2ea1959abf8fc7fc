"""Partitioner: activation constraints reach the program; instruction tables per cell; the
replicated-parameter check."""
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax import axes
from hint_jax.data import features as F
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.parallel import partitioner, sharding
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config
from hint_jax.training import batches, loop, optim
from hint_jax.training import config as config_lib

T5 = t5_config.T5Config(vocab_size=64, d_model=16, num_heads=2, head_dim=6, d_ff=24,
                        num_encoder_layers=1, num_decoder_layers=1,
                        relative_attention_num_buckets=8, relative_attention_max_distance=16)
HINT = model_config.HintConfig(t5=T5, peft=spec.PeftConfig(adapter_size=4, prefix_length=2),
                               max_instruction_length=8)


def _example(b=8, tasks=4):
  s = lambda *shape: jax.ShapeDtypeStruct(shape, np.int32)
  return {F.HYPER_ENCODER_INPUT_TOKENS: s(tasks, 8), F.TASK_INDEX: s(b),
          F.ENCODER_INPUT_TOKENS: s(b, 7), F.DECODER_INPUT_TOKENS: s(b, 5),
          F.DECODER_TARGET_TOKENS: s(b, 5), F.DECODER_LOSS_WEIGHTS: s(b, 5)}


def test_constraints_reach_the_lowered_train_step(tmp_path):
  cfg = config_lib.TrainConfig(model_dir=str(tmp_path), train_steps=1, num_microbatches=2,
                               optim=optim.OptimConfig(name="adafactor"),
                               mesh=mesh_lib.MeshConfig(model_parallel=2))
  lowered = loop.lower_step(cfg, hint.HintModel(HINT), _example())
  assert partitioner.count_sharding_constraints(lowered.as_text()) >= 20


def test_constraints_are_dropped_outside_the_partitioner_context():
  """What the Partitioner exists for: the same function under plain `jax.jit` loses them."""
  p = partitioner.Partitioner(mesh_lib.build(mesh_lib.MeshConfig(model_parallel=2)),
                              axes.STANDARD_RULES)

  def f(x):
    return nn.with_logical_constraint(x * 2, (axes.ACT_BATCH, axes.ACT_MLP))

  x = jax.ShapeDtypeStruct((8, 16), jnp.float32)
  assert partitioner.count_sharding_constraints(jax.jit(f).lower(x).as_text()) == 0
  text = p.jit(f).lower(x).as_text()
  assert partitioner.count_sharding_constraints(text) == 1
  assert '{"data"}, {"model"}' in text


def test_group_task_rows_gives_each_cell_its_own_rows():
  rng = np.random.default_rng(0)
  table = rng.integers(2, 50, (5, 3)).astype(np.int32)
  index = rng.integers(0, 5, 12).astype(np.int32)
  local = {F.HYPER_ENCODER_INPUT_TOKENS: table, F.TASK_INDEX: index,
           F.ENCODER_INPUT_TOKENS: np.arange(12 * 2).reshape(12, 2)}
  out = batches.group_task_rows(local, shards=2, microbatches=3)
  grouped, cell_index = out[F.HYPER_ENCODER_INPUT_TOKENS], out[F.TASK_INDEX]
  assert grouped.shape == (6, 2, 3)  # 2 shards x 3 microbatches, min(12 / 6, 5) rows
  np.testing.assert_array_equal(out[F.ENCODER_INPUT_TOKENS], local[F.ENCODER_INPUT_TOKENS])
  for j in range(12):
    cell = (j // 6) * 3 + j % 3  # shard block, then the interleaved microbatch
    np.testing.assert_array_equal(grouped[cell, cell_index[j]], table[index[j]])
  with pytest.raises(ValueError, match="does not split into 5 data shard"):
    batches.group_task_rows(local, shards=5, microbatches=1)
  concat = {F.ENCODER_INPUT_TOKENS: local[F.ENCODER_INPUT_TOKENS]}
  assert batches.group_task_rows(concat, 2, 3).keys() == concat.keys()


class _Wide(nn.Module):
  @nn.compact
  def __call__(self, x):
    init = nn.initializers.zeros
    big = self.param("table", nn.with_logical_partitioning(init, (axes.HYPER_SLOTS, axes.EMBED)),
                     (4096, 4096))  # 64 MiB f32, neither axis sharded by the standard rules
    split = self.param("split", nn.with_logical_partitioning(init, (axes.EMBED, axes.MLP)),
                       (4096, 4096))
    return x @ big @ split


def test_large_replicated_parameters_are_listed(caplog):
  mesh = mesh_lib.build(mesh_lib.MeshConfig(model_parallel=2))
  boxed = jax.eval_shape(_Wide().init, jax.random.PRNGKey(0), jnp.zeros((1, 4096)))
  shardings = sharding.logical_shardings(boxed, mesh, axes.STANDARD_RULES)
  assert sharding.replicated_leaves(boxed, shardings, mesh) == [("params/table", 64 * 2**20)]
  with caplog.at_level(logging.WARNING):
    sharding.warn_replicated(boxed, shardings, mesh)
  assert "params/table (64 MiB)" in caplog.text and "split" not in caplog.text
  fsdp = sharding.logical_shardings(boxed, mesh, axes.FSDP_RULES)
  assert sharding.replicated_leaves(boxed, fsdp, mesh) == []
