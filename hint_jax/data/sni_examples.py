"""SNI splits -> example records (instruction, inputs, targets, references, task, category, id).

Splits: `train` (train tasks minus the dev tasks, up to 100 seeded-shuffled instances each),
`validation` (the dev tasks: a seeded 10% of the train tasks, same instance selection) and `test`
(test tasks, first 100 instances). Non-English tasks are skipped unless `english_only=False`.
"""
import dataclasses
import functools
import logging
import os
import random
from collections.abc import Iterator

from hint_jax.data import features as F
from hint_jax.data import paths, sni_format, sni_reader

SPLITS = ("train", "validation", "test")
FORMATS = ("hint", "concat")
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SniConfig:
  """How SNI records are built.

  Attributes:
    num_pos: positive examples shown with the definition (0, 1 or 2).
    fmt: "hint" (definition + examples -> instruction) or "concat" (Tk-Instruct string as inputs).
    sni_dir: natural-instructions checkout (local or gs://); None = the configured data.
    max_instances: instances per task.
    seed: seed of the train shuffle, the reference choice and the dev-task draw.
    dev_fraction: share of train tasks held out as the `validation` split.
    english_only: skip tasks whose input/output/instruction language is not English.
  """
  num_pos: int = 0
  fmt: str = "hint"
  sni_dir: str | os.PathLike | None = None
  max_instances: int = 100
  seed: int = 42
  dev_fraction: float = 0.1
  english_only: bool = True

  def __post_init__(self):
    if self.fmt not in FORMATS:
      raise ValueError(f"unknown SNI format {self.fmt!r}; available: {FORMATS}")


def dev_task_names(train_names: list[str], fraction: float, seed: int) -> list[str]:
  """A seeded, order-independent draw of `round(fraction * n)` (at least 1) train tasks."""
  names = sorted(train_names)
  count = max(1, round(fraction * len(names)))
  return sorted(random.Random(f"dev/{seed}").sample(names, count))


def task_names(split: str, cfg: SniConfig) -> list[str]:
  """Task names of `split` in split-file order."""
  if split not in SPLITS:
    raise ValueError(f"unknown SNI split {split!r}; available: {SPLITS}")
  if split == "test":
    return sni_reader.split_task_names("test", cfg.sni_dir)
  train = sni_reader.split_task_names("train", cfg.sni_dir)
  dev = set(dev_task_names(train, cfg.dev_fraction, cfg.seed))
  return [n for n in train if (n in dev) == (split == "validation")]


@functools.lru_cache(maxsize=512)
def _read(name: str, sni_dir) -> sni_reader.SniTask:
  return sni_reader.read_task(name, sni_dir)


def task_records(task: sni_reader.SniTask, split: str, cfg: SniConfig) -> list[dict]:
  """Records of one task; `targets` is a seeded choice among the references."""
  select = "train" if split in ("train", "validation") else "test"
  instruction = sni_format.instruction(task, cfg.num_pos)
  out = []
  for inst in sni_reader.select_instances(task, select, cfg.max_instances, cfg.seed):
    inputs = sni_format.instance_input(inst.input)
    if cfg.fmt == "concat":
      instruction_text, inputs = "", instruction + inputs
    else:
      instruction_text = instruction
    out.append({F.INSTRUCTION: instruction_text, F.INPUTS: inputs,
                F.TARGETS: sni_reader.choose_target(inst, cfg.seed),
                "references": list(inst.outputs), "task": task.name,
                "category": task.category, "id": inst.id})
  return out


def records(split: str, cfg: SniConfig = SniConfig()) -> Iterator[dict]:
  """Yields the records of `split`, task by task in split-file order."""
  skipped = []
  for name in task_names(split, cfg):
    task = _read(name, str(paths.sni_dir(cfg.sni_dir)))
    if cfg.english_only and not task.is_english:
      skipped.append(name)
      continue
    yield from task_records(task, split, cfg)
  if skipped:
    _LOG.info("SNI %s: skipped %d non-English tasks: %s", split, len(skipped), skipped)
