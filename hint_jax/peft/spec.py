"""Generated task parameters: their pytree classes and the single function giving their shapes.

`TaskParams` is what the hypernetwork returns, what the backbone consumes, what the serving cache
stores and what export writes. Every array has leading axes [B, N] (batch or task, layer); the
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

from hint_jax import axes

PROJECTIONS = ("query", "key", "value", "out")
SITES = ("encoder", "decoder_self", "decoder_cross")


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
class PeftConfig:
  """Which modules are generated and their sizes. `None` disables a kind."""
  adapter_size: int | None = 64
  prefix_length: int | None = 30
  lora: LoraConfig | None = None

  def __post_init__(self):
    for name in ("adapter_size", "prefix_length"):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise ValueError(f"PeftConfig.{name} must be >= 1 or None, got {value}")

  @property
  def enabled(self) -> bool:
    return self.adapter_size is not None or self.prefix_length is not None or self.lora is not None


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

  `index` [B, N] int32 is only set at decoding time (`HintModel.generate`), when the weights are
  task rows [U, N, ...] shared by the examples of each task: `index` gives each example's row.
  """
  down: jax.Array
  down_bias: jax.Array
  up: jax.Array
  up_bias: jax.Array
  index: jax.Array | None = None


@flax.struct.dataclass
class PrefixKV:
  """Post-projection prefix keys and values: [B, N, P, H, K] each.

  `mask` [B, N, P] (True = visible) is only set when cached keys/values of a padded sequence are
  appended (`hint_jax.peft.prefix.append`, e.g. the fused instruction at serving time); the
  hypernetwork's prefixes have no padding and leave it None.
  """
  key: jax.Array
  value: jax.Array
  mask: jax.Array | None = None


@flax.struct.dataclass
class SharedKV:
  """Attention keys/values shared by all examples of a task (generated prefixes, a cached fused
  instruction), attended through a task index instead of being copied to every example.

  key, value: [U, N, I, H, K] (U tasks); mask: [U, N, I] (True = token); index: [B, N] int32,
  the task row of each example (repeated over the layer axis N so that `layer_slice` applies).
  Built at decoding time only (`HintModel.generate`); never stored or exported.
  """
  key: jax.Array
  value: jax.Array
  mask: jax.Array
  index: jax.Array


@flax.struct.dataclass
class SiteParams:
  lora: dict | None = None  # projection name -> LowRank; None when LoRA is off
  adapter: Bottleneck | None = None
  prefix: PrefixKV | None = None
  shared: SharedKV | None = None  # decoder sites at decoding time only


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


def _site_shapes(peft: PeftConfig, dims: BackboneDims, lead: tuple[int, ...],
                 with_adapter: bool):
  d, hk = dims.d_model, dims.num_heads * dims.head_dim
  lora = None
  if peft.lora is not None:
    r = peft.lora.rank
    io = {"query": (d, hk), "key": (d, hk), "value": (d, hk), "out": (hk, d)}
    lora = {p: LowRank(a=lead + (io[p][0], r), b=lead + (r, io[p][1]), scale=peft.lora.scale)
            for p in peft.lora.projections}
  adapter = None
  if with_adapter and peft.adapter_size is not None:
    a = peft.adapter_size
    adapter = Bottleneck(down=lead + (d, a), down_bias=lead + (a,), up=lead + (a, d),
                         up_bias=lead + (d,))
  prefix = None
  if peft.prefix_length is not None:
    kv = lead + (peft.prefix_length, dims.num_heads, dims.head_dim)
    prefix = PrefixKV(key=kv, value=kv)
  return SiteParams(lora=lora, adapter=adapter, prefix=prefix)


def task_param_shapes(peft: PeftConfig, dims: BackboneDims, batch: int) -> TaskParams:
  """The single source of truth: a TaskParams whose leaves are shape tuples."""
  enc = (batch, dims.num_encoder_layers)
  dec = (batch, dims.num_decoder_layers)
  return TaskParams(encoder=_site_shapes(peft, dims, enc, True),
                    decoder_self=_site_shapes(peft, dims, dec, True),
                    decoder_cross=_site_shapes(peft, dims, dec, False))


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
  projection side of LoRA factors) is `act_generated`, sharded like the generators' outputs.
  """
  b, n, g = axes.ACT_BATCH, axes.ACT_LAYERS, axes.ACT_GENERATED
  first, second = (b, n, g, None), (b, n, None, g)  # generated dim first / second
  vector = (b, n, g)
  prefix = (b, n, axes.ACT_PREFIX, axes.ACT_HEADS, axes.ACT_KV)

  def site(s: SiteParams) -> SiteParams:
    lora = None if s.lora is None else {
        p: LowRank(a=first, b=second, scale=low_rank.scale) for p, low_rank in s.lora.items()}
    adapter = None if s.adapter is None else Bottleneck(
        down=first, down_bias=vector, up=second, up_bias=vector)
    kv = None if s.prefix is None else PrefixKV(key=prefix, value=prefix)
    return SiteParams(lora=lora, adapter=adapter, prefix=kv)

  shapes = task_param_shapes(peft, dims, 1)
  return TaskParams(*(site(getattr(shapes, name)) for name in SITES))


def layer_slice(site: SiteParams, layer: int) -> SiteParams:
  """Site parameters of one layer: drops the N axis ([B, N, ...] -> [B, ...])."""
  return jax.tree.map(lambda x: x[:, layer], site)


def _task_rows(s: SiteParams) -> dict:
  """The fields of `s` that hold task rows read through an index (see `SharedKV`)."""
  rows = {"shared": s.shared} if s.shared is not None else {}
  if s.adapter is not None and s.adapter.index is not None:
    rows["adapter"] = s.adapter
  return rows


def repeat_examples(task_params: TaskParams, n: int) -> TaskParams:
  """Every example's rows repeated `n` times (beam search); shared task rows stay as they are,
  only their example index is repeated."""
  def repeat(x):
    return jnp.repeat(x, n, axis=0)

  def site(s: SiteParams) -> SiteParams:
    rows = _task_rows(s)
    repeated = jax.tree.map(repeat, s.replace(**dict.fromkeys(rows)))
    return repeated.replace(**{k: v.replace(index=repeat(v.index)) for k, v in rows.items()})
  return TaskParams(*(site(getattr(task_params, name)) for name in SITES))


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
