"""Map logical axes to NamedShardings (params, optimizer state, batches) and make global arrays."""
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hint_jax import axes, types

Rules = tuple[tuple[str, str | None], ...]


class MissingAxesError(ValueError):
  """A parameter carries no (or malformed) logical axis metadata."""


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _is_boxed(x: Any) -> bool:
  return isinstance(x, nn.LogicallyPartitioned)


def check_param_axes(boxed_params: types.PyTree, rules: Rules) -> None:
  """Refuses a parameter tree in which any leaf lacks valid logical axes.

  Every leaf must be `nn.LogicallyPartitioned` with one name per dimension, each name a parameter
  axis (not an `act_` name) that the rule table knows.

  Raises:
    MissingAxesError: naming every offending parameter path.
  """
  known = {name for name, _ in rules}
  problems = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(boxed_params, is_leaf=_is_boxed)[0]:
    where = _path_str(path)
    if not _is_boxed(leaf):
      problems.append(f"{where}: no logical axes (wrap it with nn.with_logical_partitioning)")
      continue
    names, ndim = tuple(leaf.names), len(leaf.value.shape)
    if len(names) != ndim:
      problems.append(f"{where}: {len(names)} axis names {names} for a rank-{ndim} array")
    bad = [n for n in names if not isinstance(n, str) or n.startswith("act_") or n not in known]
    if bad:
      problems.append(f"{where}: axis names {bad} are not parameter axes of the rule table")
  if problems:
    raise MissingAxesError("parameters without valid logical axes:\n  " + "\n  ".join(problems))


def logical_shardings(boxed_tree: types.PyTree, mesh: Mesh, rules: Rules) -> types.PyTree:
  """NamedSharding per leaf of a boxed (abstract) tree; unboxed leaves are replicated."""
  specs = nn.get_partition_spec(boxed_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def shardings_like(tree: types.PyTree, params_shardings: Mapping[str, Any],
                   mesh: Mesh) -> types.PyTree:
  """Shardings for a tree (e.g. optimizer state) whose leaves mirror parameter shapes.

  A leaf takes the sharding of the parameter at the longest matching path suffix when their
  shapes agree (Adam moments); other leaves (counts, factored Adafactor rows/cols) are replicated.

  Args:
    tree: abstract tree (ShapeDtypeStructs).
    params_shardings: flat {path: NamedSharding} of the parameters, paths joined with '/'.
    mesh: the device mesh.
  """
  flat_params = params_shardings

  def pick(path, leaf):
    keys = _path_str(path).split("/")
    for start in range(len(keys)):
      cand = "/".join(keys[start:])
      if cand in flat_params:
        sharding, shape = flat_params[cand]
        if tuple(leaf.shape) == tuple(shape):
          return sharding
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(pick, tree)


def flat_with_shapes(shardings: types.PyTree, abstract: types.PyTree) -> dict[str, Any]:
  """{path: (sharding, shape)} for a nested dict of shardings and its abstract arrays."""
  flat_s = traverse_util.flatten_dict(shardings, sep="/")
  flat_a = traverse_util.flatten_dict(abstract, sep="/")
  return {k: (flat_s[k], flat_a[k].shape) for k in flat_s}


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
  """Sharding of the leading (example) axis of batch features over the `act_batch` rule."""
  spec = nn.logical_to_mesh_axes((axes.ACT_BATCH,), rules)
  return NamedSharding(mesh, spec)

