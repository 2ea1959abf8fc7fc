"""`Hypernet`: an encoded instruction -> generated TaskParams shaped as `task_param_shapes`."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hint_jax import axes
from hint_jax.hypernet import components as components_lib
from hint_jax.hypernet import config as config_lib
from hint_jax.hypernet import generators, pooling
from hint_jax.peft import spec


class Hypernet(nn.Module):
  """Component-embedding table -> attention pooling over H_I -> generator MLPs -> TaskParams.

  The instruction encoder is not part of this module: the caller passes H_I (the backbone's
  encoder output, or a separate copy's), so the shared-weights case owns no duplicate params.

  Deliberate differences from the original code (allenai/hyper-task-descriptions), as DESIGN §3
  asks: padding keys are masked in the pooling attention (and H_I padding is zeroed by the
  caller); pooling and generator dropout are config values; decoder cross-attention
  slots generate no (unused) adapters; rows of `adapter_down` / `lora_*_a` are transposed into
  place rather than reshaped (see `components`); LoRA on the output projection generates
  [H*K, R] x [R, D] factors (the original sized them by head_dim).

  Attributes:
    config: pooling heads and generator dropout.
    peft: which modules are generated, and their sizes.
    dims: backbone sizes the generated shapes depend on.
    dtype: compute dtype; generated parameters are float32.
  """
  config: config_lib.HypernetConfig
  peft: spec.PeftConfig
  dims: spec.BackboneDims
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, encoded_TID: jax.Array, mask_TI: jax.Array,
               enable_dropout: bool = False) -> spec.TaskParams:
    """Generates one set of task parameters per instruction.

    Args:
      encoded_TID: encoded instructions [T, I, D] (padding rows may be anything).
      mask_TI: True for real instruction tokens [T, I]. An EOS-only instruction is valid.
      enable_dropout: pooling and generator dropout on (needs a "dropout" rng).

    Returns:
      TaskParams with leaves [T, N, ...] equal in shape to `spec.task_param_shapes(peft, dims, T)`.
    """
    comps = components_lib.components(self.peft, self.dims)
    if not comps:
      raise ValueError("Hypernet needs at least one generated module in PeftConfig")
    d = self.dims.d_model
    # std 1/sqrt(D), as the original: the pooling starts close to mean pooling.
    init = nn.with_logical_partitioning(nn.initializers.normal(d ** -0.5),
                                        (axes.HYPER_SLOTS, axes.HYPER_EMBED))
    pool = pooling.AttentionPooling(num_heads=self.config.num_heads or self.dims.num_heads,
                                    head_dim=self.config.head_dim or self.dims.head_dim,
                                    dtype=self.dtype, name="pooling")
    pool_w = pool.weights(d)
    kv = pooling.keys_values(pool_w, encoded_TID, mask_TI, self.dtype)
    rng = self.make_rng("dropout") if enable_dropout and self._dropout_rates() != (0, 0) else None
    generated = {}
    for i, c in enumerate(comps):
      table_QD = self.param(f"embed_{c.name}", init, (c.num_queries, d), jnp.float32)
      gen_w = generators.GeneratorMLP(out_features=c.out, zero_init=c.zero_init,
                                      name=f"gen_{c.name}").weights(d)
      rng_c = None if rng is None else jax.random.fold_in(rng, i)
      rows = self._generate(c, table_QD, pool_w, gen_w, kv, rng_c)
      generated[c.name] = rows.reshape(rows.shape[0], c.num_slots, c.rows, c.out)
    task_params = components_lib.assemble(self.peft, self.dims, generated)
    # Generated params are activations: [T, N, ...] sharded like the batch, their generated
    # (output) dimension like the generator's output units.
    names = spec.task_param_axes(self.peft, self.dims)
    return jax.tree.map(lambda x, n: nn.with_logical_constraint(x, n), task_params, names)

  def _dropout_rates(self) -> tuple[float, float]:
    return (self.config.pooling_dropout, self.config.generator_dropout)

  def _generate(self, c: components_lib.Component, table_QD, pool_w, gen_w, kv,
                rng: jax.Array | None) -> jax.Array:
    """Generated rows [T, S * rows, out] of one component, `pooling_chunk` queries at a time.

    Chunks are whole layer slots; each runs under `jax.checkpoint`, so neither the attention
    weights nor the generator's hidden activations of more than one chunk are ever alive.
    """
    slots = _slots_per_chunk(c, self.config.pooling_chunk)
    chunks = c.num_slots // slots
    pool_rate, gen_rate = self._dropout_rates()
    dtype = self.dtype

    @jax.checkpoint
    def chunk(queries_QD, index):
      rng_pool = rng_gen = None
      if rng is not None:
        rng_pool, rng_gen = jax.random.split(jax.random.fold_in(rng, index))
      pooled_TQD = pooling.pool(pool_w, queries_QD, kv, dtype, pool_rate, rng_pool)
      out_TQO = generators.generate(gen_w, pooled_TQD, dtype, gen_rate, rng_gen)
      return nn.with_logical_constraint(out_TQO, _ACT_GENERATED)

    queries_CQD = table_QD.reshape(chunks, -1, table_QD.shape[-1])
    if chunks == 1:
      return chunk(queries_CQD[0], 0)
    out_CTQO = jax.lax.map(lambda xs: chunk(*xs), (queries_CQD, jnp.arange(chunks)))
    out_TCQO = jnp.swapaxes(out_CTQO, 0, 1)
    return out_TCQO.reshape(out_TCQO.shape[0], -1, out_TCQO.shape[-1])


# Generated rows [T, queries, out]: tasks like the batch, outputs like the generator's units.
_ACT_GENERATED = (axes.ACT_BATCH, None, axes.ACT_GENERATED)


def _slots_per_chunk(c: components_lib.Component, max_queries: int) -> int:
  """The largest divisor of the component's slot count whose queries fit in `max_queries`
  (at least one slot)."""
  fits = [s for s in range(1, c.num_slots + 1) if c.num_slots % s == 0 and s * c.rows <= max_queries]
  return max(fits, default=1)
