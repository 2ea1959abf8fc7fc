"""Optimizers (T5X Adafactor, AdamW), learning-rate schedules and per-group rates by path regex."""
import dataclasses
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from hint_jax import types

OPTIMIZERS = ("adafactor", "adamw")
SCHEDULES = ("constant", "rsqrt", "linear", "cosine")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Optimizer, schedule and parameter groups.

  Attributes:
    name: 'adafactor' (T5X defaults) or 'adamw'.
    learning_rate: peak (or constant) rate; for 'rsqrt' the rate at the end of warmup.
    schedule: 'constant', 'rsqrt' (lr * sqrt(warmup / max(step, warmup))), 'linear' or 'cosine'
      (linear warmup, then decay to `end_lr_fraction * learning_rate` at `decay_steps`).
    warmup_steps: linear warmup length (0: none; for 'rsqrt' it is the constant plateau).
    decay_steps: step at which 'linear'/'cosine' reach their end value (the run length).
    end_lr_fraction: final rate over peak rate for 'linear'/'cosine'.
    clip_grad_norm: clip the global gradient norm to this value (None, the default: no clipping;
      the original HINT has only Adafactor's own update clipping, `clipping_threshold`).
    weight_decay: decoupled weight decay (AdamW; Adafactor's `weight_decay_rate`).
    frozen: path regexes (paths like 'backbone/encoder/...') of parameters that do not train;
      they get no gradient and no optimizer state.
    lr_multipliers: (path regex, factor) pairs; the first match scales that parameter's rate.
    decay_rate, clipping_threshold, multiply_by_parameter_scale, factored,
    min_dim_size_to_factor: Adafactor options (T5X values by default).
    b1, b2, eps: AdamW options.
  """
  name: str = "adafactor"
  learning_rate: float = 1e-3
  schedule: str = "constant"
  warmup_steps: int = 0
  decay_steps: int = 0
  end_lr_fraction: float = 0.0
  clip_grad_norm: float | None = None
  weight_decay: float = 0.0
  frozen: tuple[str, ...] = ()
  lr_multipliers: tuple[tuple[str, float], ...] = ()
  decay_rate: float = 0.8
  clipping_threshold: float | None = 1.0
  multiply_by_parameter_scale: bool = True
  factored: bool = True
  min_dim_size_to_factor: int = 128
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8

  def __post_init__(self):
    if self.name not in OPTIMIZERS:
      raise ValueError(f"OptimConfig.name must be one of {OPTIMIZERS}, got {self.name!r}")
    if self.schedule not in SCHEDULES:
      raise ValueError(f"OptimConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
    if self.schedule in ("linear", "cosine") and self.decay_steps <= self.warmup_steps:
      raise ValueError(f"OptimConfig.decay_steps ({self.decay_steps}) must exceed warmup_steps "
                       f"({self.warmup_steps}) for the {self.schedule!r} schedule")
    for pattern in self.frozen + tuple(p for p, _ in self.lr_multipliers):
      re.compile(pattern)


def make_schedule(cfg: OptimConfig) -> optax.Schedule:
  """The learning rate as a function of the optimizer step."""
  lr, warm = cfg.learning_rate, cfg.warmup_steps
  if cfg.schedule == "constant":
    if not warm:
      return optax.constant_schedule(lr)
    return optax.linear_schedule(0.0, lr, warm)
  if cfg.schedule == "rsqrt":
    plateau = max(warm, 1)
    return lambda step: lr * jnp.sqrt(plateau / jnp.maximum(step, plateau).astype(jnp.float32))
  end = lr * cfg.end_lr_fraction
  if cfg.schedule == "linear":
    decay = optax.linear_schedule(lr, end, cfg.decay_steps - warm)
  else:
    decay = optax.cosine_decay_schedule(lr, cfg.decay_steps - warm, alpha=cfg.end_lr_fraction)
  if not warm:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), decay], [warm])


def param_paths(params: types.PyTree) -> dict[str, jax.Array]:
  """Flat {'a/b/c': leaf} view of a nested dict of parameters."""
  return traverse_util.flatten_dict(params, sep="/")


def is_frozen(cfg: OptimConfig, path: str) -> bool:
  return any(re.fullmatch(p, path) for p in cfg.frozen)


def lr_multiplier(cfg: OptimConfig, path: str) -> float:
  for pattern, factor in cfg.lr_multipliers:
    if re.fullmatch(pattern, path):
      return factor
  return 1.0


class _ScaleState(NamedTuple):
  pass


def _scale_by_path(cfg: OptimConfig) -> optax.GradientTransformation:
  """Multiplies each update by its group's learning-rate factor (static, no state)."""

  def update(updates, state, params=None):
    del params
    flat = param_paths(updates)
    scaled = {k: v * lr_multiplier(cfg, k) if lr_multiplier(cfg, k) != 1.0 else v
              for k, v in flat.items()}
    return traverse_util.unflatten_dict(scaled, sep="/"), state

  return optax.GradientTransformation(lambda params: _ScaleState(), update)


def _base(cfg: OptimConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
  if cfg.name == "adamw":
    return optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                       weight_decay=cfg.weight_decay)
  return optax.adafactor(
      schedule, min_dim_size_to_factor=cfg.min_dim_size_to_factor, decay_rate=cfg.decay_rate,
      multiply_by_parameter_scale=cfg.multiply_by_parameter_scale,
      clipping_threshold=cfg.clipping_threshold, factored=cfg.factored,
      weight_decay_rate=cfg.weight_decay or None)


def make_optimizer(cfg: OptimConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optax transformation for the trainable subtree, and its schedule (for logging).

  Frozen parameters never reach this transformation (see `training.state`), so they carry no
  optimizer state.
  """
  schedule = make_schedule(cfg)
  parts: list[optax.GradientTransformation] = []
  if cfg.clip_grad_norm is not None:
    parts.append(optax.clip_by_global_norm(cfg.clip_grad_norm))
  parts.append(_base(cfg, schedule))
  if cfg.lr_multipliers:
    parts.append(_scale_by_path(cfg))
  return optax.chain(*parts), schedule

