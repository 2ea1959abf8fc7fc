"""Generated task parameters: their pytree classes and the single function giving their shapes.

What each kind generates, how the hypernetwork lays it out, its FLOPs and how decoding reads it
are declared once per kind in `hint_jax.peft.kinds`; this module holds the pytree classes.

`TaskParams` is what the hypernetwork returns, what the backbone consumes, what the serving cache
stores and what export writes: generated module parameters and nothing else (the layouts that
decoding reads them in are `hint_jax.peft.task_rows`). Every array has leading axes [B, N] (batch or task, layer); the
backbone slices layer `i` with `layer_slice`. A disabled kind is `None` (or a missing LoRA key),
never a zero array.

Sites:
  encoder        -- encoder self-attention (LoRA, prefix) and encoder FFN (adapter).
  decoder_self   -- decoder self-attention (LoRA, prefix) and decoder FFN (adapter).
  decoder_cross  -- decoder cross-attention (LoRA, prefix); never an adapter (the original code
                    generated unused adapters for these slots; we do not).
"""
from __future__ import annotations

import dataclasses

import flax
import jax
import jax.numpy as jnp

PROJECTIONS = ("query", "key", "value", "out")
SITES = ("encoder", "decoder_self", "decoder_cross")
IA3_TARGETS = ("key", "value", "mlp")


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  rank: int = 8
  alpha: float = 16.0
  projections: tuple[str, ...] = ("query", "value")

  def __post_init__(self):
    unknown = set(self.projections) - set(PROJECTIONS)
    if unknown or not self.projections:
      raise ValueError(f"LoraConfig.projections must be a non-empty subset of {PROJECTIONS}, "
                       f"got {self.projections}")
    if self.rank < 1:
      raise ValueError(f"LoraConfig.rank must be >= 1, got {self.rank}")

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


@dataclasses.dataclass(frozen=True)
class Ia3Config:
  """IA3 (Liu et al. 2022): learned vectors rescaling attention keys and values (`key`,
  `value`, every attention) and the FFN hidden activation (`mlp`, encoder and decoder FFNs)."""
  targets: tuple[str, ...] = IA3_TARGETS

  def __post_init__(self):
    unknown = set(self.targets) - set(IA3_TARGETS)
    if unknown or not self.targets:
      raise ValueError(f"Ia3Config.targets must be a non-empty subset of {IA3_TARGETS}, "
                       f"got {self.targets}")


@dataclasses.dataclass(frozen=True)
class PeftConfig:
  """Which modules are generated and their sizes. `None` disables a kind."""
  adapter_size: int | None = 64
  prefix_length: int | None = 30
  lora: LoraConfig | None = None
  ia3: Ia3Config | None = None

  def __post_init__(self):
    for name in ("adapter_size", "prefix_length"):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError(f"PeftConfig.{name} must be >= 1 or None, got {value}")

  def __repr__(self) -> str:
    # Checkpoints of runs from before IA3 carry repr(HintConfig) as their signature: an unset
    # `ia3` is left out, so those runs still resume.
    fields = [f for f in dataclasses.fields(self) if f.name != "ia3" or self.ia3 is not None]
    return f"PeftConfig({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in fields)})"

  @property
  def enabled(self) -> bool:
    return any(getattr(self, f.name) is not None for f in dataclasses.fields(self))


@flax.struct.dataclass
class LowRank:
  """One projection's delta: `x @ a @ b * scale`. a: [B, N, In, R], b: [B, N, R, Out]."""
  a: jax.Array
  b: jax.Array
  scale: float = flax.struct.field(pytree_node=False, default=1.0)  # alpha / rank


@flax.struct.dataclass
class Bottleneck:
  """Parallel adapter: `gelu(u @ down + down_bias) @ up + up_bias`.

  down: [B, N, D, A], down_bias: [B, N, A], up: [B, N, A, D], up_bias: [B, N, D].
  """
  down: jax.Array
  down_bias: jax.Array
  up: jax.Array
  up_bias: jax.Array


@flax.struct.dataclass
class PrefixKV:
  """Post-projection prefix keys and values: [B, N, P, H, K] each (always visible)."""
  key: jax.Array
  value: jax.Array


@flax.struct.dataclass
class Scaling:
  """IA3 rescaling vectors (1 = identity): key, value [B, N, H*K] multiply the projected
  attention keys/values, mlp [B, N, F] the FFN hidden activation. A target not generated (or not
  at this site: cross-attention has no FFN) is None."""
  key: jax.Array | None = None
  value: jax.Array | None = None
  mlp: jax.Array | None = None


@flax.struct.dataclass
class SiteParams:
  """The generated modules of one site: one field per kind (`hint_jax.peft.kinds`)."""
  lora: dict | None = None  # projection name -> LowRank; None when LoRA is off
  adapter: Bottleneck | None = None
  prefix: PrefixKV | None = None
  ia3: Scaling | None = None


@flax.struct.dataclass
class TaskParams:
  encoder: SiteParams
  decoder_self: SiteParams
  decoder_cross: SiteParams


@dataclasses.dataclass(frozen=True)
class BackboneDims:
  """The backbone sizes that generated shapes depend on (a view of the T5 config)."""
  d_model: int
  num_heads: int
  head_dim: int
  num_encoder_layers: int
  num_decoder_layers: int
  d_ff: int | None = None  # FFN hidden width; needed by kinds that touch the FFN hidden (IA3)


def task_param_shapes(peft: PeftConfig, dims: BackboneDims, batch: int) -> TaskParams:
  """The single source of truth: a TaskParams whose leaves are shape tuples (each kind's
  `shapes` in `hint_jax.peft.kinds`)."""
  from hint_jax.peft import kinds  # pylint: disable=g-import-not-at-top  # kinds imports spec
  return kinds.task_param_shapes(peft, dims, batch)


def _is_shape(x) -> bool:
  return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def task_param_structs(peft: PeftConfig, dims: BackboneDims, batch: int,
                       dtype=jnp.float32) -> TaskParams:
  """Like `task_param_shapes`, with `jax.ShapeDtypeStruct` leaves (for eval_shape/jit)."""
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, dtype),
                      task_param_shapes(peft, dims, batch), is_leaf=_is_shape)


def task_param_axes(peft: PeftConfig, dims: BackboneDims) -> TaskParams:
  """Logical axis names for every leaf (same structure as `task_param_shapes`).

  Rows follow the batch; the generated dimension of each leaf (the generator's output units:
  D of adapter weights, the adapter bottleneck of `down_bias`, heads x head_dim of prefixes, the
  projection side of LoRA factors, the scaled width of IA3 vectors) is `act_generated`, sharded
  like the generators' outputs.
  """
  from hint_jax.peft import kinds  # pylint: disable=g-import-not-at-top  # kinds imports spec
  return kinds.task_param_axes(peft, dims)


def layer_slice(site: SiteParams, layer: int) -> SiteParams:
  """Site parameters of one layer: drops the N axis ([B, N, ...] -> [B, ...])."""
  return jax.tree.map(lambda x: x[:, layer], site)


def take(task_params, index: jax.Array, groups: int = 1):
  """Per-example params from a per-task table (TaskParams or any part of it): [T, N, ...]
  gathered by index [B] -> [B, N, ...].

  With `groups` G > 1, rows and examples form G consecutive equal groups ([G, T/G] and
  [G, B/G]) and `index` counts within each example's own group: a batched gather that stays
  within a data shard when G is the data-parallel size.
  """
  if groups == 1:
    return jax.tree.map(lambda x: jnp.take(x, index, axis=0), task_params)
  index_GB = index.reshape(groups, -1)

  def grouped(x):
    x_GT = x.reshape((groups, -1) + x.shape[1:])
    out_GB = jax.vmap(lambda rows, i: jnp.take(rows, i, axis=0))(x_GT, index_GB)
    return out_GB.reshape((-1,) + x.shape[1:])
  return jax.tree.map(grouped, task_params)


def num_bytes(task_params: TaskParams) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(task_params))
