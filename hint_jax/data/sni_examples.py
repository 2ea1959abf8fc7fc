"""SNI splits -> example records (instruction, inputs, targets, references, task, category, id).

Splits: `train` (train tasks minus the dev tasks, up to 100 seeded-shuffled instances each),
`validation` (the dev tasks: a seeded `dev_fraction` of the train tasks, same instance selection;
empty by default, as the original trains on every train task) and `test` (test tasks, first 100
instances). Non-English tasks are skipped unless `english_only=False`. Formats: `sni_format`.
"""
import dataclasses
import functools
import logging
import os
import random
from collections.abc import Iterator

from hint_jax.data import features as F
from hint_jax.data import paths, sni_format, sni_reader, vocab

SPLITS = ("train", "validation", "test")
FORMATS = ("hint", "split_mimic", "concat", "both")
VOCAB_ENV_VAR = paths.ENV_VARS["vocab_path"]  # the task vocabulary (`paths.setting`)
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SniConfig:
  """How SNI records are built.

  Attributes:
    num_pos: positive examples shown with the definition (0, 1 or 2).
    fmt: "hint" (the published HINT Def / Def+kPos: bare definition, or examples prepended to
      "Definition: ...", to the hypernetwork; the raw instance to the encoder), "split_mimic"
      (the original's ablation: the Tk-Instruct string split into instruction | "Now complete
      the following example ..." inputs), "concat" (Tk-Instruct string as inputs) or "both"
      (the original's HINT on its Tk-Instruct tasks: the bare definition to the hypernetwork and
      the stripped Tk-Instruct string, Def + `num_pos` Pos, as inputs).
    sni_dir: natural-instructions checkout (local or gs://); None = the configured data.
    max_instances: instances per task.
    seed: seed of the train shuffle, the reference choice and the dev-task draw.
    dev_fraction: share of train tasks held out as the `validation` split (0: none, every
      train task trains, as in the original; > 0: at least one task).
    instruction_budget: `hint` Def+kPos skips a positive example that would take the
      hypernetwork text past this many tokens (EOS included), as the original (1024); None = no
      budget.
    vocab_path: SentencePiece model the budget counts with; None = $HINT_VOCAB_PATH or the
      committed default vocabulary.
    english_only: skip tasks whose input/output/instruction language is not English.
  """
  num_pos: int = 0
  fmt: str = "hint"
  sni_dir: str | os.PathLike | None = None
  max_instances: int = 100
  seed: int = 42
  dev_fraction: float = 0.0
  english_only: bool = True
  instruction_budget: int | None = 1024
  vocab_path: str | None = None

  def __post_init__(self):
    if self.fmt not in FORMATS:
      raise ValueError(f"unknown SNI format {self.fmt!r}; available: {FORMATS}")
    if not 0.0 <= self.dev_fraction < 1.0:
      raise ValueError(f"SniConfig.dev_fraction must be in [0, 1), got {self.dev_fraction}")


def dev_task_names(train_names: list[str], fraction: float, seed: int) -> list[str]:
  """A seeded, order-independent draw of `round(fraction * n)` (at least 1) train tasks; none
  when `fraction` is 0."""
  if fraction <= 0:
    return []
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


def _token_counter(vocab_path: str | None):
  """Token count with EOS (as the original's Hugging Face T5 tokenizer counts)."""
  voc = vocab.get_vocabulary(vocab_path or paths.setting("vocab_path"))
  return lambda text: len(voc.encode(text)) + 1


@functools.lru_cache(maxsize=512)
def _read(name: str, sni_dir) -> sni_reader.SniTask:
  return sni_reader.read_task(name, sni_dir)


def task_records(task: sni_reader.SniTask, split: str, cfg: SniConfig) -> list[dict]:
  """Records of one task; `targets` is a seeded choice among the references."""
  select = "train" if split in ("train", "validation") else "test"
  if cfg.fmt == "hint":
    instruction = sni_format.hint_instruction(task, cfg.num_pos, _token_counter(cfg.vocab_path),
                                              cfg.instruction_budget)
  else:
    instruction = sni_format.instruction(task, cfg.num_pos)
  out = []
  for inst in sni_reader.select_instances(task, select, cfg.max_instances, cfg.seed):
    if cfg.fmt == "hint":
      instruction_text, inputs = instruction, inst.input
    elif cfg.fmt == "concat":
      instruction_text, inputs = "", instruction + sni_format.instance_input(inst.input)
    elif cfg.fmt == "both":
      instruction_text = task.definition.strip()
      inputs = (instruction + sni_format.instance_input(inst.input)).strip()
    else:
      instruction_text, inputs = instruction, sni_format.instance_input(inst.input)
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
