"""Build the ('data', 'model') device mesh from a MeshConfig; the only caller of jax.devices()."""
import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from hint_jax import axes

RULE_SETS = {"standard": axes.STANDARD_RULES, "fsdp": axes.FSDP_RULES}


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """How devices are arranged and how logical axes map onto them.

  Attributes:
    model_parallel: devices along the `model` axis; `data` gets the rest.
    rules: logical-axis -> mesh-axis table, or the name of a built-in one: 'standard'
      (`axes.STANDARD_RULES`, T5X 1-D) or 'fsdp' (`axes.FSDP_RULES`, 2-D).
  """
  model_parallel: int = 1
  rules: tuple[tuple[str, str | None], ...] | str = axes.STANDARD_RULES

  def __post_init__(self):
    if isinstance(self.rules, str):
      if self.rules not in RULE_SETS:
        raise ValueError(f"MeshConfig.rules: unknown rule set {self.rules!r}; "
                         f"choose from {sorted(RULE_SETS)} or give a table")
      object.__setattr__(self, "rules", RULE_SETS[self.rules])
    object.__setattr__(self, "rules", tuple(tuple(r) for r in self.rules))
    if self.model_parallel < 1:
      raise ValueError(f"MeshConfig.model_parallel must be >= 1, got {self.model_parallel}")
    unknown = {m for _, m in self.rules if m is not None} - set(axes.MESH_AXES)
    if unknown:
      raise ValueError(f"MeshConfig.rules name unknown mesh axes {sorted(unknown)}; "
                       f"the mesh axes are {axes.MESH_AXES}")


def build(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 2-D mesh with axes ('data', 'model') over `devices` (default: all devices).

  Raises:
    ValueError: if `cfg.model_parallel` does not divide the device count.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  if n % cfg.model_parallel:
    raise ValueError(f"model_parallel={cfg.model_parallel} does not divide the {n} available "
                     f"devices; choose a divisor of {n}")
  shape = (n // cfg.model_parallel, cfg.model_parallel)
  if len(devices) == jax.device_count() and n > 1:
    try:  # topology-aware placement where the platform supports it
      from jax.experimental import mesh_utils  # pylint: disable=import-outside-toplevel
      grid = mesh_utils.create_device_mesh(shape, devices=devices,
                                           allow_split_physical_axes=True)
      return Mesh(grid, axes.MESH_AXES)
    except (ValueError, NotImplementedError, AssertionError):
      pass
  return Mesh(np.asarray(devices, dtype=object).reshape(shape), axes.MESH_AXES)


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape[axes.DATA]
