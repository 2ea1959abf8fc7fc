"""Baselines and ablations (DESIGN §4) as `HintConfig` variants trained through `HintModel`.

| name            | hypernetwork generates      | fusion | instruction goes to          |
|-----------------|-----------------------------|--------|------------------------------|
| hint            | as configured (adapter+prefix published) | on | hypernet + fusion     |
| concat          | nothing (plain T5)          | off    | the input text (data side)   |
| no_fusion       | as configured               | off    | hypernet only                |
| fusion_only     | nothing                     | on     | fusion only                  |
| adapters_only   | adapters                    | as base| hypernet (+ fusion)          |
| prefixes_only   | prefixes                    | as base| hypernet (+ fusion)          |
| lora_only       | LoRA (base's, or default)   | as base| hypernet (+ fusion)          |

The concatenation model is plain T5: `HintModel` then needs no instruction table, owns no
`hypernet` params, and equals `T5` exactly; the data converter puts the instruction in the input.
"""
from __future__ import annotations

import dataclasses

from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import config as config_lib
from hint_jax.models import hint
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config

VARIANTS = ("hint", "concat", "no_fusion", "fusion_only", "adapters_only", "prefixes_only",
            "lora_only")
_NO_PEFT = spec.PeftConfig(adapter_size=None, prefix_length=None, lora=None)


def concat_config(t5: t5_config.T5Config, **loss_options) -> config_lib.HintConfig:
  """The concatenation baseline (Tk-Instruct / T0 style): plain T5, no hypernetwork."""
  return config_lib.HintConfig(t5=t5, peft=_NO_PEFT, hypernet=None, fusion=False, **loss_options)


def _only(base: config_lib.HintConfig, kind: str) -> spec.PeftConfig:
  peft = base.peft
  if kind == "adapter":
    return dataclasses.replace(_NO_PEFT, adapter_size=peft.adapter_size or 64)
  if kind == "prefix":
    return dataclasses.replace(_NO_PEFT, prefix_length=peft.prefix_length or 30)
  return dataclasses.replace(_NO_PEFT, lora=peft.lora or spec.LoraConfig())


def variant(base: config_lib.HintConfig, name: str) -> config_lib.HintConfig:
  """The named baseline or ablation of a HINT config (sizes and loss settings kept).

  Args:
    base: a HINT config (its adapter/prefix/LoRA sizes are reused by the *_only variants).
    name: one of `VARIANTS`.

  Returns:
    The variant's HintConfig.
  """
  hypernet = base.hypernet or hypernet_config.HypernetConfig()
  replace = dataclasses.replace
  if name == "hint":
    return base
  if name == "concat":
    return replace(base, peft=_NO_PEFT, hypernet=None, fusion=False)
  if name == "no_fusion":
    return replace(base, fusion=False)
  if name == "fusion_only":
    return replace(base, peft=_NO_PEFT, hypernet=None, fusion=True)
  kinds = {"adapters_only": "adapter", "prefixes_only": "prefix", "lora_only": "lora"}
  if name in kinds:
    return replace(base, peft=_only(base, kinds[name]), hypernet=hypernet)
  raise ValueError(f"unknown variant {name!r}; choose from {VARIANTS}")


def build(config: config_lib.HintConfig) -> hint.HintModel:
  """The model for any variant (one class: the trainer never needs to know which)."""
  return hint.HintModel(config)
