"""Frozen `HintConfig`: backbone, generated modules, hypernetwork, fusion and instruction encoder."""
from __future__ import annotations

import dataclasses

from hint_jax.data import features as F
from hint_jax.hypernet import config as hypernet_config
from hint_jax.hypernet import sentence_encoder
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config

INSTRUCTION_ENCODERS = ("shared", "separate", "bert")


@dataclasses.dataclass(frozen=True)
class HintConfig:
  """One HINT model or baseline (DESIGN §3-4); the variants differ only in these fields.

  Attributes:
    t5: the backbone.
    peft: generated modules (adapter size, prefix length, LoRA); the published HINT uses
      adapters and prefixes (base 64/30, XL/XXL 512/30). All None = nothing generated.
    hypernet: pooling heads and generator dropout; None = no hypernetwork (the concatenation
      baseline, or the fusion-only ablation). Must be None exactly when `peft` generates nothing.
    fusion: concatenate the encoded instruction H_I in front of the encoded input, so the decoder
      cross-attends to both (mask = both padding masks).
    instruction_encoder: "shared" = the backbone's own encoder, run without adapters or prefixes
      (published); "separate" = a copy of the T5 encoder (token embedding included) under
      `params["hypernet"]["instruction_encoder"]`, initialised from the same pretrained weights;
      "bert" = a pretrained BERT-family sentence encoder (`bert`, e.g. all-MiniLM-L6-v2) plus a
      fresh projection to d_model, under the same key (`sentence_encoder.InstructionEncoder`);
      its instructions are WordPiece ids (`data.wordpiece`), not the backbone's vocabulary.
    bert: the BERT encoder's sizes; set exactly when `instruction_encoder == "bert"`.
    max_instruction_length: static instruction length I the model accepts. The data side
      truncates longer instructions and counts them; the model raises on a longer table rather
      than truncating silently. An EOS-only instruction is valid.
    z_loss: auxiliary z-loss coefficient of the training loss (T5X default 1e-4).
    label_smoothing: label smoothing of the training loss.
    concat_template: the model's input contract when it takes no instruction input (the
      concatenation baseline): how an instruction and an input become its encoder text,
      `str.format` with `instruction` and `input`. The default is what the `concat` converter
      trains on (instruction tokens, then input tokens: the SNI Tk-Instruct layout); a model
      trained on text joined otherwise (the synthetic Def tasks: "{instruction} {input}") sets
      it. Recorded in the checkpoint with the config; the Predictor uses it.
  """
  t5: t5_config.T5Config
  peft: spec.PeftConfig = dataclasses.field(default_factory=spec.PeftConfig)
  hypernet: hypernet_config.HypernetConfig | None = dataclasses.field(
      default_factory=hypernet_config.HypernetConfig)
  fusion: bool = True
  instruction_encoder: str = "shared"
  bert: sentence_encoder.BertConfig | None = None
  max_instruction_length: int = 1024
  z_loss: float = 1e-4
  label_smoothing: float = 0.0
  concat_template: str = "{instruction}{input}"

  def __post_init__(self):
    if self.instruction_encoder not in INSTRUCTION_ENCODERS:
      raise ValueError(f"HintConfig.instruction_encoder must be one of {INSTRUCTION_ENCODERS}, "
                       f"got {self.instruction_encoder!r}")
    if (self.instruction_encoder == "bert") != (self.bert is not None):
      raise ValueError("HintConfig: set `bert` (the BERT encoder's sizes) exactly when "
                       f"instruction_encoder='bert'; got instruction_encoder="
                       f"{self.instruction_encoder!r} with bert={self.bert}")
    if self.bert is not None and self.max_instruction_length > self.bert.max_positions:
      raise ValueError(f"HintConfig.max_instruction_length {self.max_instruction_length} exceeds "
                       f"the BERT encoder's max_positions {self.bert.max_positions}")
    if self.hypernet is None and self.peft.enabled:
      raise ValueError(f"HintConfig: peft={self.peft} generates modules but hypernet is None")
    if self.hypernet is not None and not self.peft.enabled:
      raise ValueError("HintConfig: a hypernet needs at least one generated module in peft "
                       "(set hypernet=None for a model without one)")
    if self.max_instruction_length < 1:
      raise ValueError(f"HintConfig.max_instruction_length must be >= 1, "
                       f"got {self.max_instruction_length}")
    if self.z_loss < 0 or not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f"HintConfig: bad loss settings z_loss={self.z_loss}, "
                       f"label_smoothing={self.label_smoothing}")

  @property
  def converter(self) -> str:
    """The data converter the model trains and serves with (`data.converters.CONVERTERS`)."""
    return "hint" if self.uses_instruction else "concat"

  def input_contract(self) -> dict:
    """What the trainer records beside the config: converter, features read, concat template."""
    features = [F.ENCODER_INPUT_TOKENS, F.DECODER_INPUT_TOKENS, F.DECODER_TARGET_TOKENS]
    if self.uses_instruction:
      features += [F.HYPER_ENCODER_INPUT_TOKENS, F.TASK_INDEX]
    return {"converter": self.converter, "features": features,
            "concat_template": None if self.uses_instruction else self.concat_template}

  @property
  def uses_instruction(self) -> bool:
    """Whether batches must carry `hyper_encoder_input_tokens` (False for plain T5)."""
    return self.hypernet is not None or self.fusion
