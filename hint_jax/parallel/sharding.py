"""Map logical axes to NamedShardings (params, optimizer state, batches) and make global arrays."""
import logging
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hint_jax import axes, types

_LOG = logging.getLogger(__name__)

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



REPLICATED_WARN_BYTES = 64 * 2**20


def replicated_leaves(boxed_tree: types.PyTree, shardings: types.PyTree, mesh: Mesh,
                      min_bytes: int = REPLICATED_WARN_BYTES) -> list[tuple[str, int]]:
  """(path, bytes) of every leaf of at least `min_bytes` that is fully replicated on a
  multi-device mesh: each device holds all of it, usually a missing logical-axis rule."""
  if mesh.size == 1:
    return []
  leaves = jax.tree_util.tree_flatten_with_path(nn.unbox(boxed_tree))[0]
  flat_sh = jax.tree_util.tree_leaves(shardings)
  out = []
  for (path, leaf), sh in zip(leaves, flat_sh):
    size = int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
    if size >= min_bytes and sh.is_fully_replicated:
      out.append((_path_str(path), size))
  return out


def warn_replicated(boxed_tree: types.PyTree, shardings: types.PyTree, mesh: Mesh) -> None:
  """Logs one warning naming every large fully replicated parameter (see `replicated_leaves`)."""
  found = replicated_leaves(boxed_tree, shardings, mesh)
  if found:
    listed = ", ".join(f"{p} ({b / 2**20:.0f} MiB)" for p, b in found)
    _LOG.warning("parameters fully replicated on the %d-device mesh (every device holds "
                    "them; give their axes a rule): %s", mesh.size, listed)
