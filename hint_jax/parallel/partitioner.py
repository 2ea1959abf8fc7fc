"""`Partitioner`: one owner of the device mesh, the logical-axis rules and the jit context.

Activation constraints (`nn.with_logical_constraint`, e.g. `layers.dense.constrain`) are no-ops
unless the program is traced with logical-axis rules *and* a mesh in context. Every jitted
program of the trainer is therefore traced through a Partitioner: `jit(...)` returns a function
whose calls, `lower` and `eval_shape` run inside `context()`, so the constraints reach the
compiled program (tests/parallel checks that they do).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh

from hint_jax import axes
from hint_jax.parallel import sharding

Rules = sharding.Rules


class Partitioner:
  """A mesh plus the rule table that maps logical axis names onto it.

  Attributes:
    mesh: the ('data', 'model') device mesh.
    rules: logical-axis -> mesh-axis table (`hint_jax.axes.STANDARD_RULES` or `FSDP_RULES`).
  """

  def __init__(self, mesh: Mesh, rules: Rules):
    self.mesh = mesh
    self.rules = tuple(rules)

  @contextlib.contextmanager
  def context(self) -> Iterator[None]:
    """Mesh and axis rules in context (for tracing, i.e. jit's first call or `lower`)."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  def jit(self, fn: Callable, **jit_kwargs: Any) -> Jitted:
    """`jax.jit(fn, **jit_kwargs)` whose tracing happens inside `context()`."""
    return Jitted(self, jax.jit(fn, **jit_kwargs))

  def replicated(self) -> jax.sharding.NamedSharding:
    return sharding.replicated(self.mesh)

  def key(self) -> tuple:
    """Hashable identity (devices, axis names, rules): programs compiled under equal keys are
    interchangeable."""
    return (tuple(d.id for d in self.mesh.devices.flat), self.mesh.shape_tuple, self.rules)


def single_device(rules: Rules = axes.STANDARD_RULES) -> Partitioner:
  """A 1 x 1 ('data', 'model') mesh on the first local device: the default of serving and of
  tools that run on one chip, so their programs are traced under the same rules as training."""
  device = np.asarray(jax.local_devices()[:1], dtype=object).reshape(1, 1)
  return Partitioner(Mesh(device, axes.MESH_AXES), rules)


class Jitted:
  """A jitted function traced under its partitioner's context (call it like the function)."""

  def __init__(self, partitioner: Partitioner, jitted: Any):
    self._partitioner = partitioner
    self._jitted = jitted

  def __call__(self, *args, **kwargs):
    with self._partitioner.context():
      return self._jitted(*args, **kwargs)

  def lower(self, *args, **kwargs) -> jax.stages.Lowered:
    with self._partitioner.context():
      return self._jitted.lower(*args, **kwargs)

  def eval_shape(self, *args, **kwargs):
    with self._partitioner.context():
      return self._jitted.eval_shape(*args, **kwargs)

  def __getattr__(self, name: str):
    """Everything else of the jitted function (e.g. `_cache_size`), which does not trace."""
    return getattr(self._jitted, name)


def count_sharding_constraints(lowered_text: str) -> int:
  """Sharding constraints in a lowered program's text (Shardy or GSPMD dialect)."""
  return lowered_text.count("sdy.sharding_constraint") + lowered_text.count("@Sharding")
