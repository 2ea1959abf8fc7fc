"""Export generated TaskParams: any as safetensors, LoRA-only as a Hugging Face PEFT adapter."""
from __future__ import annotations

import json
import os

import numpy as np
import safetensors.numpy

from hint_jax.peft import kinds, spec
from hint_jax.serving import task_params_io

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# Our projection names -> the HF T5 Linear module names.
HF_PROJECTIONS = {"query": "q", "key": "k", "value": "v", "out": "o"}
# Our site -> (HF stack, layer index inside a block, attention module name).
HF_SITES = {"encoder": ("encoder", 0, "SelfAttention"),
            "decoder_self": ("decoder", 0, "SelfAttention"),
            "decoder_cross": ("decoder", 1, "EncDecAttention")}


def save_task_params(path: str, task_params: spec.TaskParams) -> None:
  """Dumps any TaskParams (every declared kind) to one safetensors file."""
  task_params_io.save(path, task_params)


def _lora_only(task_params: spec.TaskParams) -> None:
  for site in spec.SITES:
    sp = getattr(task_params, site)
    extra = [kind.name for kind, _ in kinds.items(sp) if kind.name != "lora"]
    if extra:
      raise ValueError(f"PEFT export needs LoRA-only TaskParams; {site} also has {extra}")
    if not sp.lora:
      raise ValueError(f"PEFT export needs LoRA at every site; {site} has none")


def lora_state_dict(task_params: spec.TaskParams, index: int = 0) -> dict[str, np.ndarray]:
  """PEFT tensor names -> float32 arrays for row `index` of a [T, N, ...] TaskParams.

  Ours: delta = x @ a @ b * scale with a [In, R], b [R, Out]; PEFT: B(A(x)) * alpha / r with
  A.weight [R, In], B.weight [Out, R]; so A = a^T and B = b^T.
  """
  _lora_only(task_params)
  tensors = {}
  for site, (stack, sub, module) in HF_SITES.items():
    for proj, low in getattr(task_params, site).lora.items():
      a_NIR, b_NRO = np.asarray(low.a[index]), np.asarray(low.b[index])
      for layer in range(a_NIR.shape[0]):
        name = (f"base_model.model.{stack}.block.{layer}.layer.{sub}.{module}."
                f"{HF_PROJECTIONS[proj]}")
        tensors[f"{name}.lora_A.weight"] = np.ascontiguousarray(a_NIR[layer].T, np.float32)
        tensors[f"{name}.lora_B.weight"] = np.ascontiguousarray(b_NRO[layer].T, np.float32)
  return tensors


def adapter_config(task_params: spec.TaskParams, base_model_path: str = "") -> dict:
  """The `adapter_config.json` of a LoRA adapter on `T5ForConditionalGeneration`."""
  _lora_only(task_params)
  lows = [low for s in spec.SITES for low in getattr(task_params, s).lora.values()]
  ranks, scales = {low.a.shape[-1] for low in lows}, {float(low.scale) for low in lows}
  if len(ranks) != 1 or len(scales) != 1:
    raise ValueError(f"PEFT export needs one rank and scale, got ranks {ranks}, scales {scales}")
  rank, scale = ranks.pop(), scales.pop()
  projections = sorted({p for s in spec.SITES for p in getattr(task_params, s).lora})
  return {"peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "r": rank,
          "lora_alpha": scale * rank, "target_modules": [HF_PROJECTIONS[p] for p in projections],
          "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
          "use_rslora": False, "use_dora": False, "init_lora_weights": True,
          "inference_mode": True, "modules_to_save": None, "layers_to_transform": None,
          "base_model_name_or_path": base_model_path, "revision": None}


def save_peft_adapter(task_params: spec.TaskParams, directory: str, base_model_path: str = "",
                      index: int = 0) -> None:
  """Writes `adapter_model.safetensors` + `adapter_config.json` for `PeftModel.from_pretrained`.

  The backbone is the one `hint_jax.t5.hf.save_hf_t5` exports. Only valid for models without
  instruction fusion: with fusion the decoder also reads the encoded instruction, which a PEFT
  adapter cannot carry (`export_instruction` checks this).

  Raises:
    ValueError: the TaskParams hold other kinds than LoRA, or mixed LoRA ranks/scales.
  """
  config = adapter_config(task_params, base_model_path)
  tensors = lora_state_dict(task_params, index)
  os.makedirs(directory, exist_ok=True)
  task_params_io.atomic_write_bytes(os.path.join(directory, ADAPTER_WEIGHTS),
                                    safetensors.numpy.save(tensors, metadata={"format": "pt"}))
  with open(os.path.join(directory, ADAPTER_CONFIG), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)


def export_instruction(predictor, instruction: str, directory: str,
                       base_model_path: str = "") -> None:
  """Generates the LoRA of `instruction` with a `Predictor` and saves it as a PEFT adapter."""
  if predictor.model.config.fusion:
    raise ValueError("PEFT export needs a model without instruction fusion (fusion=False): with "
                     "fusion the decoder also attends to the encoded instruction")
  save_peft_adapter(predictor.adapt(instruction), directory, base_model_path)
