"""Generated-module kinds, each declared once: shapes, generator layout, FLOPs, decode-time rows.

A *kind* is one field of `spec.SiteParams` (adapter, prefix, lora, ia3). Its declaration says
  - `shapes`: what it generates at a site, given the config (`task_param_shapes` walks them);
  - `fields` / `build`: its arrays by name and back (the hypernetwork's components
    `<kind>_<field>`, the serving file names `<site>.<kind>.<field>`);
  - `layout`: how the hypernetwork lays its generator rows out (rows, out, transposed);
  - `attention_flops` / `ffn_flops` / `kv_flops`: forward FLOPs it adds (`evaluation.flops`);
  - `task_rows`: where decoding of examples of few tasks reads it (`HintModel.generate`): a
    part of a `task_rows.DecodeSite`.
Everything else walks `items(site)`, which names an undeclared kind in a ValueError, so a kind
can never be dropped silently. The application hooks live in the layers they change
(`layers/attention.py`, `layers/mlp.py`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax

from hint_jax import axes
from hint_jax.peft import spec
from hint_jax.peft import task_rows as rows_lib

Shape = tuple[int, ...]
FFN_SITES = ("encoder", "decoder_self")  # cross-attention slots have no FFN
_B, _N, _G = axes.ACT_BATCH, axes.ACT_LAYERS, axes.ACT_GENERATED


class Kind:
  """One generated-module kind. Subclasses set the class attributes and override as needed.

  Attributes:
    name: its `spec.SiteParams` field (and the prefix of its component and file names).
    config_field: the `spec.PeftConfig` field enabling it (None there disables the kind).
    config_cls: that field's dataclass, or None for a plain value.
    leaf_cls: its pytree class; `fields` lists the array fields in component order.
    transposed: fields whose generated rows are the leaf's second axis (see `layout`).
    acts_on_kv: it changes projected cross-attention keys/values, so the cached instruction
      memory (`HintModel.cache_memory`) is projected with it.
    zero_init: its generators' final layer starts at zero, so a fresh hypernetwork generates
      exactly zeros for it (`hypernet.generators.GeneratorMLP`).
  """
  name: str = ""
  config_field: str = ""
  config_cls: type | None = None
  leaf_cls: type = type(None)
  field_names: tuple[str, ...] = ()
  transposed: tuple[str, ...] = ()
  acts_on_kv: bool = False
  zero_init: bool = False

  def enabled(self, peft: spec.PeftConfig) -> bool:
    return getattr(peft, self.config_field) is not None

  def shapes(self, peft: spec.PeftConfig, dims: spec.BackboneDims, site: str,
             lead: Shape) -> Any:
    """The leaf of shape tuples generated at `site` ([T, N] = `lead`), or None."""
    raise NotImplementedError

  def fields(self, leaf) -> dict[str, Any]:
    """Array fields by name, in component order (None fields left out)."""
    values = {f: getattr(leaf, f) for f in self.field_names}
    return {k: v for k, v in values.items() if v is not None}

  def static(self, leaf) -> dict[str, float]:  # pylint: disable=unused-argument
    """Non-array values the leaf carries (LoRA scales), by field-name prefix."""
    return {}

  def build(self, fields: dict[str, Any], static: dict[str, float]) -> Any:  # pylint: disable=unused-argument
    """Inverse of `fields` (+ `static`). A missing field stays None, so that a damaged file
    shows as a leaf that does not fit the model (the serving Predictor's check names it)."""
    unknown = set(fields) - set(self.field_names)
    if unknown:
      raise ValueError(f"unknown {self.name} field(s) {sorted(unknown)}")
    return self.leaf_cls(**{f: fields.get(f) for f in self.field_names})

  def from_generated(self, template, fields: dict[str, jax.Array]) -> Any:
    """The leaf from generator rows already shaped as `template`'s fields."""
    return self.build(fields, self.static(template))

  def layout(self, field: str, shape: Shape) -> tuple[int, int, bool]:
    """(rows, out, transposed) of a field's generator rows, given its shape after [T, N]: one
    pooled vector per row, each mapped to `out` numbers; a transposed field is [out, rows]."""
    if len(shape) == 1:
      return 1, shape[0], False
    if field in self.transposed or field.split(".")[-1] in self.transposed:
      return shape[1], shape[0], True
    return shape[0], shape[1], False

  def axes(self, shapes_leaf) -> Any:
    """Logical axes of every field: rows follow the batch, the generated dim `act_generated`."""
    def names(field, shape):
      _, _, transposed = self.layout(field, shape[2:])
      if len(shape) == 3:
        return (_B, _N, _G)
      return (_B, _N, _G, None) if transposed else (_B, _N, None, _G)
    fields = {f: names(f, s) for f, s in self.fields(shapes_leaf).items()}
    return self.build(fields, self.static(shapes_leaf))

  def attention_flops(self, leaf, q_len: int, kv_len: int) -> int:  # pylint: disable=unused-argument
    """Forward FLOPs added to one attention block (`leaf` holds shape tuples [1, N, ...])."""
    return self.kv_flops(leaf, kv_len)

  def kv_flops(self, leaf, kv_len: int) -> int:  # pylint: disable=unused-argument
    """The part of `attention_flops` spent on projected keys/values (cached memory pre-pays it)."""
    return 0

  def ffn_flops(self, leaf, tokens: int) -> int:  # pylint: disable=unused-argument
    """Forward FLOPs added to one FFN block."""
    return 0

  def task_rows(self, leaf, index_B: jax.Array) -> tuple[str, Any]:
    """(`task_rows.DecodeSite` field, value) of a leaf of [U, ...] task rows when decoding
    examples of few tasks: by default each example's own row, gathered into `modules`."""
    return "modules", spec.take(leaf, index_B)


def _dense(tokens: int, d_in: int, d_out: int) -> int:
  return 2 * tokens * d_in * d_out


class Adapter(Kind):
  """Parallel bottleneck adapter beside every FFN (`peft/adapter.py`)."""
  name, config_field, leaf_cls = "adapter", "adapter_size", spec.Bottleneck
  field_names = ("down", "up", "down_bias", "up_bias")
  transposed = ("down",)

  def shapes(self, peft, dims, site, lead):
    if site not in FFN_SITES or peft.adapter_size is None:
      return None
    d, a = dims.d_model, peft.adapter_size
    return spec.Bottleneck(down=lead + (d, a), down_bias=lead + (a,), up=lead + (a, d),
                           up_bias=lead + (d,))

  def fields(self, leaf):
    return {f: getattr(leaf, f) for f in self.field_names}

  def ffn_flops(self, leaf, tokens):
    return 2 * _dense(tokens, leaf.down[-2], leaf.down[-1])

  def task_rows(self, leaf, index_B):
    return "rows", leaf  # read through the index, not copied


class Prefix(Kind):
  """Post-projection prefix keys/values in every attention (`peft/prefix.py`)."""
  name, config_field, leaf_cls = "prefix", "prefix_length", spec.PrefixKV
  field_names = ("key", "value")

  def shapes(self, peft, dims, site, lead):
    if peft.prefix_length is None:
      return None
    kv = lead + (peft.prefix_length, dims.num_heads, dims.head_dim)
    return spec.PrefixKV(key=kv, value=kv)

  def layout(self, field, shape):
    return shape[0], shape[1] * shape[2], False

  def axes(self, shapes_leaf):
    names = (_B, _N, axes.ACT_PREFIX, axes.ACT_HEADS, axes.ACT_KV)
    return spec.PrefixKV(key=names, value=names)

  def attention_flops(self, leaf, q_len, kv_len):
    _, _, p, h, k = leaf.key
    return 2 * 2 * q_len * p * h * k  # logits and weighted values of the P prefix positions

  def task_rows(self, leaf, index_B):
    return "kv", rows_lib.masked(leaf)  # attended through the index, not copied


class Lora(Kind):
  """Low-rank deltas of the attention projections (`peft/lora.py`)."""
  name, config_field, config_cls, leaf_cls = "lora", "lora", spec.LoraConfig, dict
  transposed = ("a",)
  acts_on_kv = True

  def shapes(self, peft, dims, site, lead):
    if peft.lora is None:
      return None
    d, hk, r = dims.d_model, dims.num_heads * dims.head_dim, peft.lora.rank
    io = {"query": (d, hk), "key": (d, hk), "value": (d, hk), "out": (hk, d)}
    return {p: spec.LowRank(a=lead + (io[p][0], r), b=lead + (r, io[p][1]), scale=peft.lora.scale)
            for p in peft.lora.projections}

  def fields(self, leaf):
    return {f"{p}.{x}": getattr(low, x) for p, low in leaf.items() for x in ("a", "b")}

  def static(self, leaf):
    return {p: float(low.scale) for p, low in leaf.items()}

  def build(self, fields, static):
    projections = dict.fromkeys(f.split(".")[0] for f in fields)
    unknown = set(projections) - set(spec.PROJECTIONS)
    if unknown or set(fields) != {f"{p}.{x}" for p in projections for x in ("a", "b")}:
      raise ValueError(f"not a set of LoRA factors: {sorted(fields)}")
    return {p: spec.LowRank(a=fields[f"{p}.a"], b=fields[f"{p}.b"], scale=static[p])
            for p in projections}

  def attention_flops(self, leaf, q_len, kv_len):
    return self._flops(leaf, ("query", "out"), q_len) + self.kv_flops(leaf, kv_len)

  def kv_flops(self, leaf, kv_len):
    return self._flops(leaf, ("key", "value"), kv_len)

  @staticmethod
  def _flops(leaf, projections, tokens):
    return sum(_dense(tokens, *leaf[p].a[-2:]) + _dense(tokens, *leaf[p].b[-2:])
               for p in projections if p in leaf)


class Ia3(Kind):
  """IA3 rescaling vectors (Liu et al. 2022) of keys, values and the FFN hidden activation
  (`peft/ia3.py`). Generated as `1 + generator output`, with the generators' final layer
  zero-initialised (`zero_init`): a fresh model scales by exactly 1, the identity the IA3 paper
  initialises its vectors to, so it starts as the backbone (the usual IA3 / LoRA-B convention;
  the gradient of that final layer is not zero, so the vectors still learn). Adapters, prefixes
  and LoRA keep the original's fan-in init of every generator layer: they start small, not
  zero."""
  name, config_field, config_cls, leaf_cls = "ia3", "ia3", spec.Ia3Config, spec.Scaling
  field_names = ("key", "value", "mlp")
  acts_on_kv = True
  zero_init = True

  def shapes(self, peft, dims, site, lead):
    if peft.ia3 is None:
      return None
    hk = dims.num_heads * dims.head_dim
    targets = {t: lead + (hk,) for t in ("key", "value") if t in peft.ia3.targets}
    if "mlp" in peft.ia3.targets and site in FFN_SITES:
      if dims.d_ff is None:
        raise ValueError("IA3 on 'mlp' needs the FFN width: BackboneDims.d_ff is None")
      targets["mlp"] = lead + (dims.d_ff,)
    return spec.Scaling(**targets) if targets else None

  def from_generated(self, template, fields):
    return self.build({f: 1.0 + x for f, x in fields.items()}, {})

  def kv_flops(self, leaf, kv_len):
    return sum(kv_len * getattr(leaf, t)[-1] for t in ("key", "value")
               if getattr(leaf, t) is not None)

  def ffn_flops(self, leaf, tokens):
    return 0 if leaf.mlp is None else tokens * leaf.mlp[-1]


KINDS: dict[str, Kind] = {k.name: k for k in (Adapter(), Prefix(), Lora(), Ia3())}


def _check_registry() -> None:
  site_fields = {f.name for f in dataclasses.fields(spec.SiteParams)}
  config_fields = {f.name for f in dataclasses.fields(spec.PeftConfig)}
  if site_fields != set(KINDS) or config_fields != {k.config_field for k in KINDS.values()}:
    raise ValueError(f"SiteParams kinds {sorted(site_fields)} / PeftConfig fields "
                     f"{sorted(config_fields)} are not the declared kinds {sorted(KINDS)}")


_check_registry()


def get(name: str) -> Kind:
  """The declared kind `name`. Raises a one-line ValueError naming an unknown kind."""
  if name not in KINDS:
    raise ValueError(f"unknown generated-module kind {name!r}; declared kinds: {sorted(KINDS)} "
                     "(declare it in hint_jax/peft/kinds.py)")
  return KINDS[name]


def items(site: spec.SiteParams) -> list[tuple[Kind, Any]]:
  """(kind, leaf) of every kind present at a site, in registry order.

  Raises:
    ValueError: the site holds a field that is not a declared kind (one line naming it).
  """
  present = {f.name: getattr(site, f.name) for f in dataclasses.fields(site)}
  present = {k: v for k, v in present.items()
             if v is not None and not (isinstance(v, dict) and not v)}
  for name in present:
    get(name)
  return [(k, present[name]) for name, k in KINDS.items() if name in present]


def task_row_site(site: spec.SiteParams, index_B: jax.Array, index_BN: jax.Array,
                  kv: rows_lib.MaskedKV | None = None) -> rows_lib.DecodeSite:
  """A site of [U, ...] task rows as decoding reads it for examples `index_B` [B]: each kind
  where its `task_rows` says. `kv`: task-row keys/values already holding the site's prefix (a
  prefix joined to cached memory); the site then holds no prefix.

  Raises:
    ValueError: the site holds an undeclared kind, or a prefix besides `kv`.
  """
  parts: dict[str, Any] = {"modules": {}, "rows": {}, "kv": kv}
  for kind, leaf in items(site):  # an undeclared kind is an error, never dropped
    where, value = kind.task_rows(leaf, index_B)
    if where == "kv":
      if parts["kv"] is not None:
        raise ValueError(f"{kind.name}: a site with task-row keys/values holds a second set")
      parts["kv"] = value
    else:
      parts[where][kind.name] = value
  return rows_lib.DecodeSite(spec.SiteParams(**parts["modules"]), spec.SiteParams(**parts["rows"]),
                             parts["kv"], index_BN)


def task_param_shapes(peft: spec.PeftConfig, dims: spec.BackboneDims,
                      batch: int) -> spec.TaskParams:
  """See `spec.task_param_shapes`: every enabled kind's `shapes` at every site."""
  layers = {"encoder": dims.num_encoder_layers, "decoder_self": dims.num_decoder_layers,
            "decoder_cross": dims.num_decoder_layers}

  def site(name: str) -> spec.SiteParams:
    lead = (batch, layers[name])
    return spec.SiteParams(**{k.name: k.shapes(peft, dims, name, lead)
                              for k in KINDS.values() if k.enabled(peft)})
  return spec.TaskParams(**{name: site(name) for name in spec.SITES})


def task_param_axes(peft: spec.PeftConfig, dims: spec.BackboneDims) -> spec.TaskParams:
  """See `spec.task_param_axes`."""
  shapes = task_param_shapes(peft, dims, 1)
  return spec.TaskParams(**{name: spec.SiteParams(**{k.name: k.axes(leaf) for k, leaf
                                                     in items(getattr(shapes, name))})
                            for name in spec.SITES})


def peft_config_from_dict(d: dict[str, Any]) -> spec.PeftConfig:
  """A PeftConfig from `dataclasses.asdict` output read back from json (lists -> tuples).

  Raises:
    ValueError: a field that is no declared kind's (one line naming it).
  """
  classes = {k.config_field: k.config_cls for k in KINDS.values()}
  unknown = sorted(set(d) - set(classes))
  if unknown:
    raise ValueError(f"unknown generated-module kind(s) {unknown} in the PeftConfig; declared: "
                     f"{sorted(classes)}")
  values = {}
  for field, value in d.items():
    if classes[field] is not None and isinstance(value, dict):
      value = classes[field](**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in value.items()})
    values[field] = value
  return spec.PeftConfig(**values)
