"""Decode-time layouts of generated parameters: what the decoder reads, never what is generated.

`spec.TaskParams` is one thing: generated per-task module parameters as the hypernetwork emits
them ([T, N, ...] task rows, or [B, N, ...] after `spec.take` gathers them per example). When
decoding examples of few tasks (`HintModel.encode_inputs(share_task_rows=True)`), or with a
cached instruction memory, the decoder reads them in another layout, held by the types here:

  MaskedKV     -- keys/values attended before an attention's own, with a padding mask: a
                  generated prefix followed by cached instruction keys/values (`prefix.append`).
  DecodeSite   -- one decoder site: per-example modules, task rows read through a per-example
                  index, and the masked keys/values.
  DecodeParams -- the two decoder sites, what `T5.decode` reads in place of a TaskParams.

They are built at decoding time only, from TaskParams; never stored, cached or exported.
"""
from __future__ import annotations

import flax
import jax
import jax.numpy as jnp

from hint_jax.peft import spec


@flax.struct.dataclass
class MaskedKV:
  """Keys/values [R, N, P, H, K] and their mask [R, N, P] (True = visible), attended before an
  attention's own keys/values. R is the examples B, or the task rows U of a `DecodeSite` with an
  index (read through it)."""
  key: jax.Array
  value: jax.Array
  mask: jax.Array


def masked(prefix: spec.PrefixKV) -> MaskedKV:
  """A generated prefix (always visible) as MaskedKV."""
  return MaskedKV(prefix.key, prefix.value, jnp.ones(prefix.key.shape[:3], bool))


@flax.struct.dataclass
class DecodeSite:
  """One decoder site as decoding reads it (every array keeps its layer axis N second, so
  `spec.layer_slice` applies).

  Attributes:
    modules: generated modules gathered per example [B, N, ...]. Its prefix, if any, has moved
      into `kv` whenever `kv` is set.
    rows: generated modules kept as task rows [U, N, ...], read through `index` (adapters).
    kv: keys/values attended before the own ones (the generated prefix and/or the cached
      instruction memory): task rows [U, N, ...] read through `index` when it is set, else per
      example [B, N, ...]; or None.
    index: [B, N] int32, the task row of each example (repeated over N); None without task rows.
  """
  modules: spec.SiteParams
  rows: spec.SiteParams
  kv: MaskedKV | None = None
  index: jax.Array | None = None

  @classmethod
  def of(cls, site: spec.SiteParams | DecodeSite | None) -> DecodeSite | None:
    """Any site as a DecodeSite (a SiteParams holds per-example modules only)."""
    if site is None or isinstance(site, DecodeSite):
      return site
    return cls(modules=site, rows=spec.SiteParams())

  @property
  def prefix(self) -> spec.PrefixKV | MaskedKV | None:
    """Per-example keys/values prepended to the own ones (a generated prefix or `kv`)."""
    if self.kv is not None and self.index is None:
      return self.kv
    return self.modules.prefix

  @property
  def shared_kv(self) -> MaskedKV | None:
    """Task-row keys/values read through `index`, or None."""
    return None if self.index is None else self.kv

  def adapter(self) -> tuple[spec.Bottleneck | None, jax.Array | None]:
    """The adapter and, when it is task rows, the index reading them (else None)."""
    if self.rows.adapter is not None:
      return self.rows.adapter, self.index
    return self.modules.adapter, None


@flax.struct.dataclass
class DecodeParams:
  """The decoder sites as decoding reads them (`T5.decode` takes these or a TaskParams)."""
  decoder_self: DecodeSite
  decoder_cross: DecodeSite


def repeat_examples(params: spec.TaskParams | DecodeParams, n: int):
  """Every example's rows repeated `n` times (beam search); task rows stay as they are, only
  their example index is repeated."""
  def repeat(x):
    return None if x is None else jax.tree.map(lambda a: jnp.repeat(a, n, axis=0), x)

  if isinstance(params, spec.TaskParams):
    return repeat(params)

  def site(s: DecodeSite) -> DecodeSite:
    return DecodeSite(modules=repeat(s.modules), rows=s.rows, index=repeat(s.index),
                      kv=s.kv if s.index is not None else repeat(s.kv))
  return DecodeParams(site(params.decoder_self), site(params.decoder_cross))
