"""Parameter groups of HINT models: owner labels and freezing presets (the trainable/frozen split is `training.state.split_params`)."""
from __future__ import annotations

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
