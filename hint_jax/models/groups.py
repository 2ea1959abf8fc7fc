"""Parameter groups of HINT models: owner labels, freezing presets and trainable/frozen split."""
from __future__ import annotations

import re

from flax import traverse_util

from hint_jax import types

BACKBONE = "backbone"
HYPERNET = "hypernet"

# What trains, as path regexes of frozen parameters (bind `OptimConfig.frozen` to one of these).
FROZEN_PATTERNS = {
    "all": (),  # everything trains end to end (published)
    "hypernet": (f"{BACKBONE}/.*",),  # frozen backbone: only the hypernetwork trains
    "backbone": (f"{HYPERNET}/.*",),  # frozen hypernetwork
}


def owner_labels(params: types.PyTree) -> types.PyTree:
  """Same nested-dict tree as params with 'backbone' or 'hypernet' at every leaf."""
  unknown = set(params) - {BACKBONE, HYPERNET}
  if unknown:
    raise ValueError(f"params must have only '{BACKBONE}'/'{HYPERNET}' at the top, got {unknown}")
  flat = traverse_util.flatten_dict(dict(params))
  return traverse_util.unflatten_dict({path: path[0] for path in flat})


def frozen_patterns(train: str) -> tuple[str, ...]:
  """Regexes over 'owner/a/b' paths of the frozen parameters for a preset name."""
  if train not in FROZEN_PATTERNS:
    raise ValueError(f"unknown training preset {train!r}; choose from {sorted(FROZEN_PATTERNS)}")
  return FROZEN_PATTERNS[train]


def split(params: types.PyTree, patterns: tuple[str, ...]
          ) -> tuple[types.PyTree, types.PyTree]:
  """(trainable, frozen) nested dicts: a leaf is frozen when its '/'-path matches a pattern."""
  flat = traverse_util.flatten_dict(dict(params), sep="/")
  frozen = {k: v for k, v in flat.items() if any(re.fullmatch(p, k) for p in patterns)}
  trainable = {k: v for k, v in flat.items() if k not in frozen}
  return (traverse_util.unflatten_dict(trainable, sep="/"),
          traverse_util.unflatten_dict(frozen, sep="/"))


def merge(trainable: types.PyTree, frozen: types.PyTree) -> types.PyTree:
  """Inverse of `split`."""
  flat = traverse_util.flatten_dict(dict(trainable), sep="/")
  flat.update(traverse_util.flatten_dict(dict(frozen), sep="/"))
  return traverse_util.unflatten_dict(flat, sep="/")
