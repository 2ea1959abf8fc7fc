"""Hypernet module: generated shapes equal the spec, masking, finiteness, instruction sensitivity."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.hypernet import components
from hint_jax.hypernet import config as config_lib
from hint_jax.hypernet import model as model_lib
from hint_jax.peft import spec

DIMS = spec.BackboneDims(d_model=12, num_heads=3, head_dim=5, num_encoder_layers=2,
                         num_decoder_layers=3, d_ff=14)
LORA = spec.LoraConfig(rank=3, alpha=6.0, projections=("query", "value", "out"))
PEFTS = {
    "all": spec.PeftConfig(adapter_size=7, prefix_length=2, lora=LORA),
    "adapter": spec.PeftConfig(adapter_size=7, prefix_length=None),
    "prefix": spec.PeftConfig(adapter_size=None, prefix_length=2),
    "lora": spec.PeftConfig(adapter_size=None, prefix_length=None, lora=LORA),
    "ia3": spec.PeftConfig(adapter_size=None, prefix_length=None, ia3=spec.Ia3Config()),
}


def _inputs(num_tasks=4, length=6, seed=0):
  rng_h, rng_len = jax.random.split(jax.random.PRNGKey(seed))
  encoded_TID = jax.random.normal(rng_h, (num_tasks, length, DIMS.d_model))
  lengths = jax.random.randint(rng_len, (num_tasks,), 1, length + 1)
  mask_TI = jnp.arange(length)[None] < lengths[:, None]
  return encoded_TID * mask_TI[..., None], mask_TI


def _net(peft, **kw):
  return model_lib.Hypernet(config_lib.HypernetConfig(**kw), peft, DIMS)


@pytest.fixture(scope="module")
def net_all():
  """The all-kinds hypernet with its real initialiser (run once) and a compiled apply."""
  net = _net(PEFTS["all"], generator_dropout=0.5)
  variables = net.init(jax.random.PRNGKey(1), *_inputs())
  apply = jax.jit(net.apply, static_argnames="enable_dropout")
  return net, variables, apply


@pytest.mark.parametrize("name", sorted(PEFTS))
def test_shapes_equal_spec(name):
  encoded_TID, mask_TI = _inputs()
  net = _net(PEFTS[name])
  variables = jax.eval_shape(net.init, jax.random.PRNGKey(1), encoded_TID, mask_TI)
  out = jax.eval_shape(net.apply, nn.unbox(variables), encoded_TID, mask_TI)
  chex.assert_trees_all_equal_shapes_and_dtypes(out, spec.task_param_structs(PEFTS[name], DIMS, 4))
  # Disabled kinds are absent, never zeros.
  assert (out.encoder.adapter is None) == (PEFTS[name].adapter_size is None)
  assert (out.encoder.prefix is None) == (PEFTS[name].prefix_length is None)
  assert (out.encoder.ia3 is None) == (PEFTS[name].ia3 is None)
  assert out.decoder_cross.adapter is None
  if PEFTS[name].lora is not None:
    assert out.encoder.lora["query"].scale == LORA.scale


def test_real_init_and_apply_are_finite_and_match_spec(net_all):
  _, variables, apply = net_all
  out = apply(nn.unbox(variables), *_inputs())
  chex.assert_trees_all_equal_shapes_and_dtypes(out, spec.task_param_structs(PEFTS["all"], DIMS, 4))
  chex.assert_tree_all_finite(out)
  params = variables["params"]
  comps = {c.name: c for c in components.components(PEFTS["all"], DIMS)}
  assert {k for k in params if k.startswith("gen_")} == {f"gen_{n}" for n in comps}
  # Adapter tables cover encoder + decoder-self layers only (no decoder-cross adapters).
  assert params["embed_adapter_down"].value.shape == (7 * (2 + 3), 12)
  assert params["embed_prefix_key"].value.shape == (2 * (2 + 3 + 3), 12)
  names = [x.names for x in jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, nn.Partitioned))]
  assert all(not n.startswith("act_") for ns in names for n in ns)


def test_padding_is_masked(net_all):
  _, variables, apply = net_all
  encoded_TID, mask_TI = _inputs()
  mask_TI = mask_TI.at[:, 3:].set(False)
  garbage = encoded_TID.at[:, 3:].set(100.0)
  params = nn.unbox(variables)
  chex.assert_trees_all_close(apply(params, encoded_TID, mask_TI), apply(params, garbage, mask_TI),
                              atol=1e-6)


def test_eos_only_and_all_padding_rows_are_finite(net_all):
  _, variables, apply = net_all
  encoded_TID, _ = _inputs()
  mask_TI = jnp.zeros((4, 6), bool).at[:2, 0].set(True)  # rows 2, 3: all padding
  chex.assert_tree_all_finite(apply(nn.unbox(variables), encoded_TID, mask_TI))


def test_different_instructions_differ_and_rows_are_per_task(net_all):
  _, variables, apply = net_all
  encoded_TID, mask_TI = _inputs()
  params = nn.unbox(variables)
  out = apply(params, encoded_TID, mask_TI)
  down = out.encoder.adapter.down
  assert float(jnp.abs(down[0] - down[1]).max()) > 1e-4
  # Each task's output depends only on its own row (the table can be padded or reordered).
  swapped = apply(params, encoded_TID[::-1], mask_TI[::-1])
  chex.assert_trees_all_close(jax.tree.map(lambda x: x[::-1], out), swapped, atol=1e-6)


def test_generator_dropout_is_a_config_value(net_all):
  _, variables, apply = net_all
  params = nn.unbox(variables)
  det = apply(params, *_inputs())
  drop = apply(params, *_inputs(), enable_dropout=True, rngs={"dropout": jax.random.key(3, impl="rbg")})
  assert not np.allclose(det.encoder.prefix.key, drop.encoder.prefix.key)
  with pytest.raises(ValueError):
    config_lib.HypernetConfig(generator_dropout=1.0)


def test_no_generated_module_is_an_error():
  net = _net(spec.PeftConfig(adapter_size=None, prefix_length=None))
  with pytest.raises(ValueError, match="at least one"):
    jax.eval_shape(net.init, jax.random.PRNGKey(1), *_inputs())
