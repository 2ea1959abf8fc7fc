"""Mesh construction and logical-axis sharding on 8 simulated CPU devices."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from hint_jax import axes
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.parallel import sharding


@pytest.mark.parametrize("model_parallel,shape", [(1, (8, 1)), (2, (4, 2)), (4, (2, 4)),
                                                  (8, (1, 8))])
def test_mesh_shapes(model_parallel, shape):
  m = mesh_lib.build(mesh_lib.MeshConfig(model_parallel=model_parallel))
  assert m.axis_names == ("data", "model") and tuple(m.devices.shape) == shape


def test_mesh_that_does_not_divide_is_a_clear_error():
  with pytest.raises(ValueError, match="model_parallel=3 does not divide the 8 available"):
    mesh_lib.build(mesh_lib.MeshConfig(model_parallel=3))
  with pytest.raises(ValueError, match="unknown rule set"):
    mesh_lib.MeshConfig(rules="zero3")
  assert mesh_lib.MeshConfig(rules="fsdp").rules == axes.FSDP_RULES


class _Net(nn.Module):
  bad: str = ""

  @nn.compact
  def __call__(self, x):
    init = nn.initializers.normal(0.1)
    w = self.param("wi", nn.with_logical_partitioning(init, (axes.EMBED, axes.MLP)), (8, 16))
    emb = self.param("embedding", nn.with_logical_partitioning(init, (axes.VOCAB, axes.EMBED)),
                     (32, 8))
    if self.bad == "unboxed":
      self.param("scale", init, (8,))
    if self.bad == "activation":
      self.param("scale", nn.with_logical_partitioning(init, (axes.ACT_EMBED,)), (8,))
    if self.bad == "rank":
      self.param("scale", nn.with_logical_partitioning(init, (axes.EMBED, axes.MLP)), (8,))
    return emb[x] @ w


def _boxed(bad=""):
  return jax.eval_shape(_Net(bad).init, jax.random.PRNGKey(0), jnp.zeros((2,), jnp.int32))


@pytest.mark.parametrize("bad,match", [("unboxed", "scale: no logical axes"),
                                       ("activation", "act_embed"),
                                       ("rank", "2 axis names")])
def test_params_without_valid_axes_are_refused(bad, match):
  sharding.check_param_axes(_boxed(), axes.STANDARD_RULES)  # the good tree passes
  with pytest.raises(sharding.MissingAxesError, match=match):
    sharding.check_param_axes(_boxed(bad), axes.STANDARD_RULES)


def test_rules_map_to_named_shardings():
  m = mesh_lib.build(mesh_lib.MeshConfig(model_parallel=2))
  std = sharding.logical_shardings(_boxed(), m, axes.STANDARD_RULES)["params"]
  fsdp = sharding.logical_shardings(_boxed(), m, axes.FSDP_RULES)["params"]
  assert std["wi"].spec == P(None, "model") and std["embedding"].spec == P("model", None)
  assert fsdp["wi"].spec == P("data", "model") and fsdp["embedding"].spec == P("model", "data")
  assert sharding.batch_sharding(m, axes.STANDARD_RULES).spec == P("data")
