"""Initialising parameters from another source: choose them by path, restore into sharded targets.

`restore_matching` is model-agnostic: a path regex (`TrainConfig.init_patterns`) chooses the
leaves, the source supplies them by flat path ('backbone/encoder/...'). Sources are either a
flat dict of host arrays (Hugging Face weights, tests) or a `CheckpointParams`: another hint_jax
run's checkpoint, opened lazily. From a checkpoint every leaf stored in the target's layout is
read by orbax straight into the target's sharding, so each process reads only the shards its
devices hold (at XXL no host holds the whole 11B-parameter model); only leaves that need a layer
layout conversion (`T5Config.scan_layers` differs) go through whole host arrays.
"""
import collections
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import traverse_util

from hint_jax import types
from hint_jax.training import checkpoint

_GROUPS = ("trainable", "frozen")  # where the trainer's TrainState keeps params


class CheckpointParams(Mapping):
  """The params (trainable and frozen) of one step of another run, read on demand.

  Keys and shapes come from the step's array metadata; `[path]` reads one whole array to the
  host; `restore_into` reads many at once into (sharded) targets. `directory` and `step` let the
  trainer take the optimizer state from the same step (`TrainConfig.init_optimizer_state`).

  Raises (on construction):
    FileNotFoundError: no checkpoint in `directory`.
    CorruptCheckpointError: the step's metadata cannot be read.
    ValueError: the step holds no trainable/frozen params (not a hint_jax trainer checkpoint).
  """

  def __init__(self, directory: epath.PathLike, step: int | None = None):
    self.directory = str(directory)
    self.step = checkpoint.latest_step(directory) if step is None else int(step)
    tree = checkpoint.read_params_metadata(directory, self.step)
    self._where: dict[str, tuple[str, Any]] = {}  # path -> (group, array metadata)
    for group in _GROUPS:
      for path, meta in traverse_util.flatten_dict(tree[group], sep="/").items():
        self._where[path] = (group, meta)

  def __getitem__(self, path: str) -> np.ndarray:
    if path not in self._where:
      raise KeyError(path)
    return self._restore({path: ocp.RestoreArgs(restore_type=np.ndarray)})[path]

  def __contains__(self, path: object) -> bool:  # Mapping's default would read the array
    return path in self._where

  def __iter__(self) -> Iterator[str]:
    return iter(self._where)

  def __len__(self) -> int:
    return len(self._where)

  def shape(self, path: str) -> tuple[int, ...]:
    return tuple(self._where[path][1].shape)

  def restore_into(self, targets: Mapping[str, Any]) -> dict[str, jax.Array]:
    """{path: array} read into each target's dtype and sharding (arrays or ShapeDtypeStructs;
    a target without a sharding is read onto the first device)."""
    def args(target):
      sharding = getattr(target, "sharding", None) or jax.sharding.SingleDeviceSharding(
          jax.devices()[0])
      return ocp.ArrayRestoreArgs(sharding=sharding, global_shape=tuple(target.shape),
                                  dtype=target.dtype)
    return self._restore({k: args(t) for k, t in targets.items()})

  def _restore(self, restore_args: Mapping[str, Any]) -> dict[str, Any]:
    item, args = {}, {}
    for path, arg in restore_args.items():
      group, meta = self._where[path]
      item[(group, *path.split("/"))] = meta
      args[(group, *path.split("/"))] = arg
    item, args = traverse_util.unflatten_dict(item), traverse_util.unflatten_dict(args)
    out = checkpoint.restore_state_items(self.directory, self.step, item, args)
    return {"/".join(k[1:]): v for k, v in traverse_util.flatten_dict(out).items()}


_SCANNED = re.compile(r"(^|/)layers(/|$)")
_UNROLLED = re.compile(r"(^|/)layers_(\d+)(/|$)")


def _in_layer_layout(source: Mapping[str, Any], wanted: list[str]) -> Mapping[str, Any]:
  """`source` plus the `wanted` paths that it holds in the other layer layout (`T5Config.
  scan_layers`): a scanned `.../layers/...` [N, ...] leaf stacked from `layers_0..N-1`, or an
  unrolled `.../layers_i/...` leaf sliced from the stacked one. So a Hugging Face import or an
  unrolled run initialises a scanned model and vice versa."""
  extra = {}
  for key in wanted:
    if _SCANNED.search(key):
      parts = [_SCANNED.sub(lambda m, i=i: f"{m[1]}layers_{i}{m[2]}", key, count=1)
               for i in range(len(source))]
      parts = list(itertools.takewhile(lambda k: k in source, parts))
      if parts:
        extra[key] = np.stack([np.asarray(source[k]) for k in parts])
    elif (m := _UNROLLED.search(key)) is not None:
      stacked = _UNROLLED.sub(lambda m: f"{m[1]}layers{m[3]}", key, count=1)
      if stacked in source and int(m[2]) < _shape(source, stacked)[0]:
        extra[key] = np.asarray(source[stacked])[int(m[2])]
  return collections.ChainMap(extra, source) if extra else source  # lazy: no array is read


def _shape(source: Mapping[str, Any], key: str) -> tuple[int, ...]:
  return source.shape(key) if isinstance(source, CheckpointParams) else np.shape(source[key])


def restore_matching(params: types.PyTree, source: Mapping[str, Any],
                     patterns: tuple[str, ...]) -> tuple[types.PyTree, list[str]]:
  """Replaces every leaf of `params` whose path fully matches a pattern by `source[path]`.

  Model-agnostic partial restore: e.g. patterns=('backbone/.*',) takes the backbone from a
  pretrained checkpoint and leaves the hypernetwork freshly initialised. Each replacement keeps
  the target's dtype and sharding; from a `CheckpointParams` source, leaves in the target's
  layout are read straight into that sharding (module docstring).

  Args:
    params: nested dict of (sharded) arrays, or of ShapeDtypeStructs carrying shardings.
    source: flat {path: array} (paths joined with '/'), or a `CheckpointParams`.
    patterns: path regexes selecting what to restore.

  Returns:
    The new params and the sorted list of restored paths.

  Raises:
    ValueError: a selected path is missing from `source` or has another shape, or nothing
      was selected.
  """
  flat = traverse_util.flatten_dict(params, sep="/")
  chosen = sorted(k for k in flat if any(re.fullmatch(p, k) for p in patterns))
  if not chosen:
    raise ValueError(f"no parameter path matches {patterns}; paths look like {next(iter(flat))}")
  direct = {}
  if isinstance(source, CheckpointParams):  # same layout: straight into the target sharding
    direct = {k: flat[k] for k in chosen if k in source and source.shape(k) == flat[k].shape}
  rest = [k for k in chosen if k not in direct]
  host = _in_layer_layout(source, [k for k in rest if k not in source])
  missing = [k for k in rest if k not in host]
  if missing:
    raise ValueError(f"{len(missing)} selected params are not in the source, e.g. {missing[:3]}")
  bad = [f"{k}: {_shape(host, k)} vs {flat[k].shape}" for k in rest
         if tuple(_shape(host, k)) != tuple(flat[k].shape)]
  if bad:
    raise ValueError(f"shape mismatch in partial restore: {bad[:3]}")
  out = dict(flat)
  if direct:
    out.update(source.restore_into(direct))
  for k in rest:
    target = flat[k]
    value = np.asarray(host[k], dtype=target.dtype)
    sharding = getattr(target, "sharding", None)
    out[k] = (jax.make_array_from_callback(value.shape, sharding, lambda idx, v=value: v[idx])
              if sharding is not None else jax.numpy.asarray(value))
  return traverse_util.unflatten_dict(out, sep="/"), chosen
