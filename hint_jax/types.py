"""Shared type aliases and protocols."""
from collections.abc import Mapping
from typing import Any

import jax

Array = jax.Array
PRNGKey = jax.Array
PyTree = Any
Params = Mapping[str, Any]
Batch = Mapping[str, Array]
Metrics = Mapping[str, Array]
