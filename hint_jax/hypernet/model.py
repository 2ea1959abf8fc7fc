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
  caller); generator dropout is a config value (default 0.0, as before); decoder cross-attention
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
      enable_dropout: generator dropout on (needs a "dropout" rng).

    Returns:
      TaskParams with leaves [T, N, ...] equal in shape to `spec.task_param_shapes(peft, dims, T)`.
    """
    comps = components_lib.components(self.peft, self.dims)
    if not comps:
      raise ValueError("Hypernet needs at least one generated module in PeftConfig")
    d = self.dims.d_model
    init = nn.with_logical_partitioning(nn.initializers.normal(1.0),
                                        (axes.HYPER_SLOTS, axes.EMBED))
    tables = [self.param(f"embed_{c.name}", init, (c.num_queries, d), jnp.float32)
              for c in comps]
    pool = pooling.AttentionPooling(num_heads=self.config.num_heads or self.dims.num_heads,
                                    head_dim=self.config.head_dim or self.dims.head_dim,
                                    dtype=self.dtype, name="pooling")
    pooled_TQD = pool(jnp.concatenate(tables, axis=0), encoded_TID, mask_TI)
    generated, start = {}, 0
    for c in comps:
      pooled_c = pooled_TQD[:, start:start + c.num_queries]
      start += c.num_queries
      mlp = generators.GeneratorMLP(out_features=c.out, dropout_rate=self.config.generator_dropout,
                                    dtype=self.dtype, name=f"gen_{c.name}")
      rows = mlp(pooled_c, enable_dropout=enable_dropout)
      generated[c.name] = rows.reshape(rows.shape[0], c.num_slots, c.rows, c.out)
    task_params = components_lib.assemble(self.peft, self.dims, generated)
    # Generated params are activations: [T, N, ...] sharded like the batch (no-op without rules).
    names = spec.task_param_axes(self.peft, self.dims)
    return jax.tree.map(lambda x, n: nn.with_logical_constraint(x, n), task_params, names)
