"""Reader of Super-NaturalInstructions task files (official schema and old string-Definition files)."""
import dataclasses
import json
import os
import random

from etils import epath

from hint_jax.data import paths

REQUIRED_FIELDS = ("Definition", "Positive Examples", "Instances")
_LANGUAGE_FIELDS = ("Input_language", "Output_language", "Instruction_language")


class SniFormatError(ValueError):
  """A task file or task name that cannot be read; the message names the file/field/task."""


@dataclasses.dataclass(frozen=True)
class Instance:
  id: str
  input: str
  outputs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Example:
  input: str
  output: str


@dataclasses.dataclass(frozen=True)
class SniTask:
  """One task file: definition, positive examples, instances and metadata."""
  name: str
  definition: str
  positive_examples: tuple[Example, ...]
  instances: tuple[Instance, ...]
  category: str  # Categories[0] lower-cased, spaces -> "_" (as the official evaluation groups)
  is_english: bool


def _field(data: dict, key: str, path: str):
  if key not in data:
    raise SniFormatError(f"{path}: missing field {key!r}")
  return data[key]


def _text(value, path: str, key: str) -> str:
  if isinstance(value, list):
    value = value[0] if value else ""
  if not isinstance(value, str):
    raise SniFormatError(f"{path}: field {key!r} must be a string or list of strings")
  return value


def _instances(data: dict, name: str, path: str) -> tuple[Instance, ...]:
  out = []
  for i, inst in enumerate(_field(data, "Instances", path)):
    if not isinstance(inst, dict):
      raise SniFormatError(f"{path}: field 'Instances[{i}]' is not an object")
    outputs = _field(inst, "output", f"{path} Instances[{i}]")
    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    if not outputs:
      raise SniFormatError(f"{path}: field 'Instances[{i}].output' is empty")
    text = _text(_field(inst, "input", f"{path} Instances[{i}]"), path, f"Instances[{i}].input")
    out.append(Instance(str(inst.get("id", f"{name}-{i}")), text, outputs))
  return tuple(out)


def parse_task(name: str, text: str, path: str = "<memory>") -> SniTask:
  """Parses the JSON text of one task file.

  Raises:
    SniFormatError: malformed JSON, a missing field, or an empty definition (names `path`).
  """
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise SniFormatError(f"{path}: malformed JSON: {e}") from None
  if not isinstance(data, dict):
    raise SniFormatError(f"{path}: top level is not a JSON object")
  for key in REQUIRED_FIELDS:
    _field(data, key, path)
  definition = _text(data["Definition"], path, "Definition")
  if not definition.strip():
    raise SniFormatError(f"{path}: field 'Definition' is empty")
  examples = []
  for i, ex in enumerate(data["Positive Examples"]):
    where = f"{path} Positive Examples[{i}]"
    examples.append(Example(_text(_field(ex, "input", where), path, "input"),
                            _text(_field(ex, "output", where), path, "output")))
  categories = data.get("Categories") or ["unknown"]
  english = all(data.get(k, ["English"]) == ["English"] for k in _LANGUAGE_FIELDS)
  return SniTask(name, definition, tuple(examples), _instances(data, name, path),
                 "_".join(categories[0].lower().split()), english)


def read_task(name: str, sni_dir: str | os.PathLike | None = None) -> SniTask:
  """Reads `<sni_dir>/tasks/<name>.json` (sni_dir defaults to the configured data)."""
  path = paths.sni_dir(sni_dir) / "tasks" / f"{name}.json"
  if not path.exists():
    raise SniFormatError(f"unknown SNI task {name!r}: no file {path}")
  return parse_task(name, path.read_text(encoding="utf-8"), str(path))


def split_task_names(split: str, sni_dir: str | os.PathLike | None = None,
                     split_dir: str = "default") -> list[str]:
  """Task names listed in `splits/<split_dir>/<split>_tasks.txt`, in file order."""
  path = epath.Path(paths.sni_dir(sni_dir)) / "splits" / split_dir / f"{split}_tasks.txt"
  if not path.exists():
    raise SniFormatError(f"SNI split file not found: {path}")
  return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def select_instances(task: SniTask, split: str, max_instances: int = 100,
                     seed: int = 42) -> tuple[Instance, ...]:
  """Train: seeded shuffle then the first `max_instances`; eval: the first `max_instances`."""
  instances = list(task.instances)
  if split == "train":
    random.Random(seed).shuffle(instances)
  return tuple(instances[:max_instances])


def choose_target(instance: Instance, seed: int) -> str:
  """A seeded choice among multiple references (independent of instance order)."""
  return random.Random(f"{seed}/{instance.id}").choice(instance.outputs)
