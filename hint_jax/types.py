"""Shared type aliases and protocols."""
from typing import Any, Mapping

import jax

Array = jax.Array
PRNGKey = jax.Array
PyTree = Any
Params = Mapping[str, Any]
Batch = Mapping[str, Array]
Metrics = Mapping[str, Array]
