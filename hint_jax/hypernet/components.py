"""The generated components (rows, output width, layer slots) derived from `task_param_shapes`.

A *component* is one array field of a generated kind, named `<kind>_<field>`, e.g. the adapter
down-projection `adapter_down`. For every layer slot that holds it, the hypernetwork pools `rows`
vectors (one per generated row) and a generator MLP maps each to `out` numbers. Each kind
declares this layout (`hint_jax.peft.kinds`, `Kind.layout`); the rows are then laid out as:

| component           | rows | out     | leaf (after [T, N])  |
|---------------------|------|---------|----------------------|
| adapter_down        | A    | D       | [D, A]  (transposed) |
| adapter_up          | A    | D       | [A, D]               |
| adapter_down_bias   | 1    | A       | [A]                  |
| adapter_up_bias     | 1    | D       | [D]                  |
| prefix_key / _value | P    | H*K     | [P, H, K]            |
| lora_<proj>_a       | R    | in      | [in, R] (transposed) |
| lora_<proj>_b       | R    | out     | [R, out]             |
| ia3_key / _value    | 1    | H*K     | [H*K] (1 + rows)     |
| ia3_mlp             | 1    | F       | [F]   (1 + rows)     |

Transposing `adapter_down` and `lora_*_a` keeps one pooled vector per bottleneck unit / rank
direction (the original code reshaped [A, D] to [D, A] instead, mixing units; deliberate fix).
Layer slots follow `spec.SITES` order: encoder layers, decoder self layers, decoder cross layers;
decoder cross slots have no adapter (nor IA3 `mlp`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from hint_jax.peft import kinds, spec


@dataclasses.dataclass(frozen=True)
class Component:
  """One generated leaf kind.

  Attributes:
    name: e.g. "adapter_down", "prefix_key", "lora_query_a".
    rows: pooled vectors per layer slot (one per generated row).
    out: generator output width per row.
    transpose: the leaf is [out, rows] rather than [rows, out] (before the final reshape).
    sites: (site name, number of layers) for every site holding the leaf, in `spec.SITES` order.
    zero_init: its generator's final layer starts at zero (`peft.kinds.Kind.zero_init`).
  """
  name: str
  rows: int
  out: int
  transpose: bool
  sites: tuple[tuple[str, int], ...]
  zero_init: bool = False

  @property
  def num_slots(self) -> int:
    return sum(n for _, n in self.sites)

  @property
  def num_queries(self) -> int:
    return self.num_slots * self.rows


def _component(kind: kinds.Kind, field: str) -> str:
  return f"{kind.name}_{field.replace('.', '_')}"


def _site_leaves(site: spec.SiteParams) -> dict:
  """Component name -> (kind, field, leaf) of one site (shape tuples or arrays alike)."""
  return {_component(kind, field): (kind, field, value)
          for kind, leaf in kinds.items(site) for field, value in kind.fields(leaf).items()}


def components(peft: spec.PeftConfig, dims: spec.BackboneDims) -> tuple[Component, ...]:
  """Every generated component, in a fixed order (the order of the pooling queries)."""
  shapes = spec.task_param_shapes(peft, dims, 1)
  found: dict[str, dict] = {}
  for site_name in spec.SITES:
    for name, (kind, field, shape) in _site_leaves(getattr(shapes, site_name)).items():
      rows, out, transpose = kind.layout(field, shape[2:])
      entry = found.setdefault(name, {"rows": rows, "out": out, "transpose": transpose,
                                      "sites": (), "zero_init": kind.zero_init})
      if (entry["rows"], entry["out"]) != (rows, out):
        raise ValueError(f"component {name} differs between sites: {entry} vs {(rows, out)}")
      entry["sites"] += ((site_name, shape[1]),)
  return tuple(Component(name=name, **entry) for name, entry in found.items())


def _to_leaf(generated_TNRO: jax.Array, component: Component, shape: tuple[int, ...]):
  if component.transpose:
    generated_TNRO = jnp.swapaxes(generated_TNRO, -1, -2)
  return generated_TNRO.reshape(shape)


def assemble(peft: spec.PeftConfig, dims: spec.BackboneDims,
             generated: dict[str, jax.Array]) -> spec.TaskParams:
  """Lay generated rows out as a TaskParams.

  Args:
    peft: which kinds are generated.
    dims: backbone sizes.
    generated: component name -> [T, S, rows, out] over all of its S layer slots.

  Returns:
    TaskParams with leading [T, N] axes and the shapes of `spec.task_param_shapes`.
  """
  comps = {c.name: c for c in components(peft, dims)}
  num_tasks = next(iter(generated.values())).shape[0]
  template = spec.task_param_shapes(peft, dims, num_tasks)
  offsets = {name: 0 for name in comps}
  sites = {}
  for site_name in spec.SITES:
    site = getattr(template, site_name)
    fields: dict = {}
    for name, (kind, field, shape) in _site_leaves(site).items():
      start, n = offsets[name], shape[1]
      fields.setdefault(kind.name, {})[field] = _to_leaf(generated[name][:, start:start + n],
                                                         comps[name], shape)
      offsets[name] += n
    sites[site_name] = spec.SiteParams(**{
        kind.name: kind.from_generated(leaf, fields[kind.name]) for kind, leaf in kinds.items(site)})
  return spec.TaskParams(**sites)
