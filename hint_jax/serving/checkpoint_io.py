"""Read a trained model (HintConfig + params) from a trainer model directory, without gin."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from typing import Any

from flax import traverse_util

from hint_jax.hypernet import config as hypernet_config
from hint_jax.hypernet import sentence_encoder
from hint_jax.models import config as model_config
from hint_jax.peft import kinds
from hint_jax.t5 import config as t5_config

CONFIG_FILE = "hint_config.json"  # beside `checkpoints/` in the model directory
META_KEY = "hint_config"  # or inside the checkpoint's json `meta` item
CHECKPOINTS = "checkpoints"
_LOG = logging.getLogger(__name__)


def config_to_dict(config: model_config.HintConfig) -> dict[str, Any]:
  return dataclasses.asdict(config)


def config_from_dict(d: dict[str, Any]) -> model_config.HintConfig:
  """Inverse of `config_to_dict` (nested dataclasses; tuples restored from json lists)."""
  d = dict(d)
  d["t5"] = t5_config.T5Config(**d["t5"])
  d["peft"] = kinds.peft_config_from_dict(dict(d.get("peft") or {}))
  if d.get("hypernet") is not None:
    d["hypernet"] = hypernet_config.HypernetConfig(**d["hypernet"])
  if d.get("bert") is not None:
    d["bert"] = sentence_encoder.BertConfig(**d["bert"])
  return model_config.HintConfig(**d)


def save_config(model_dir: str, config: model_config.HintConfig) -> str:
  """Writes `<model_dir>/hint_config.json` (what `load` reads when the meta lacks it)."""
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, CONFIG_FILE)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(config_to_dict(config), f, indent=2, sort_keys=True)
  return path


def _checkpoint_dir(model_dir: str) -> str:
  sub = os.path.join(model_dir, CHECKPOINTS)
  return sub if os.path.isdir(sub) else model_dir


def _read_meta(ckpt_dir: str, step: int) -> dict[str, Any]:
  """The step's json `meta` item ({} when the step has none).

  Raises:
    CorruptCheckpointError: the meta item exists but cannot be read (half-written, garbled).
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top  # slow import

  from hint_jax.training import checkpoint  # pylint: disable=g-import-not-at-top  # orbax
  meta_dir = os.path.join(ckpt_dir, str(step), "meta")
  if not os.path.isdir(meta_dir):
    return {}
  options = ocp.CheckpointManagerOptions(read_only=True, create=False)
  mgr = ocp.CheckpointManager(ckpt_dir, item_names=("state", "meta"), options=options)
  try:
    return dict(mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
  except Exception as e:  # any failure to parse an existing item is damage
    raise checkpoint.CorruptCheckpointError(
        f"checkpoint {ckpt_dir}/{step} is unreadable: its meta item: {type(e).__name__}: "
        f"{' '.join(str(e).split())[:200]}") from e
  finally:
    mgr.close()


def _read_config(model_dir: str, ckpt_dir: str, step: int) -> model_config.HintConfig:
  meta = _read_meta(ckpt_dir, step)
  if META_KEY in meta:
    return config_from_dict(meta[META_KEY])
  path = os.path.join(model_dir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return config_from_dict(json.load(f))
  raise ValueError(f"{model_dir}: no model config ({CONFIG_FILE} or checkpoint meta "
                   f"'{META_KEY}'); pass config=HintConfig(...)")


def _quiet_closed_loop(hook=None) -> None:
  """Drops tensorstore's late "Event loop is closed" callbacks after a failed restore.

  When one array read fails, orbax closes its event loop while the other reads are still in
  flight; their completions then arrive as unraisable RuntimeErrors (a traceback each), after
  the one-line error has already been reported. Every other unraisable exception is passed on.
  """
  previous = hook or sys.unraisablehook
  if getattr(previous, "_hint_quiet", False):
    return

  def quiet(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      return
    previous(unraisable)
  quiet._hint_quiet = True  # pylint: disable=protected-access
  sys.unraisablehook = quiet


def _load_step(model_dir: str, ckpt_dir: str, step: int,
               config: model_config.HintConfig | None) -> tuple[model_config.HintConfig, dict]:
  from hint_jax.training import checkpoint  # pylint: disable=g-import-not-at-top  # orbax
  flat = checkpoint.load_params(ckpt_dir, step)  # first: an emptied step is damage, not config
  config = config or _read_config(model_dir, ckpt_dir, step)
  return config, traverse_util.unflatten_dict(flat, sep="/")


def load(model_dir: str, step: int | None = None,
         config: model_config.HintConfig | None = None
         ) -> tuple[model_config.HintConfig, dict, str]:
  """(config, nested params of host arrays, `<abs dir>@<step>`) of a trained model.

  Without `step`, the newest readable step: like the trainer's resume, a damaged newer step
  (truncated arrays, missing array metadata, a garbled meta item) is skipped with one warning
  line naming the step and why. Serving never moves or deletes checkpoint files.

  Raises:
    FileNotFoundError: no checkpoint in `model_dir`, or no step `step`.
    CorruptCheckpointError: the given step, or every step, is unreadable (one line).
    ValueError: no config was found and none was given.
  """
  from hint_jax.training import checkpoint  # pylint: disable=g-import-not-at-top  # orbax
  ckpt_dir = _checkpoint_dir(model_dir)
  if not os.path.isdir(ckpt_dir):
    raise FileNotFoundError(f"no model directory {model_dir}")
  steps = sorted(int(s) for s in os.listdir(ckpt_dir) if s.isdigit())
  if not steps:
    raise FileNotFoundError(f"no checkpoint found in {ckpt_dir}")
  if step is not None and step not in steps:
    raise FileNotFoundError(f"no checkpoint step {step} in {ckpt_dir} (steps: {steps})")
  _quiet_closed_loop()
  candidates = [step] if step is not None else steps[::-1]
  for n, s in enumerate(candidates):
    try:
      config_s, params = _load_step(model_dir, ckpt_dir, s, config)
    except checkpoint.CorruptCheckpointError as e:
      if step is not None:
        raise
      later = candidates[n + 1] if n + 1 < len(candidates) else None
      _LOG.warning("skipping checkpoint step %d: %s; %s", s, " ".join(str(e).split()),
                   f"trying step {later}" if later is not None else "no older step left")
      continue
    return config_s, params, f"{os.path.abspath(model_dir)}@{s}"
  raise checkpoint.CorruptCheckpointError(
      f"none of the checkpoints {candidates} in {ckpt_dir} is readable (see the warnings above)")
