"""Reader of Super-NaturalInstructions task files (official schema and old string-Definition files)."""
import dataclasses
import json
import os
import random

from etils import epath

from hint_jax.data import paths, schema

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
  """A string field; the official schema also allows a list of strings (its first is used)."""
  if isinstance(value, list):
    if not all(isinstance(v, str) for v in value):
      bad = next(v for v in value if not isinstance(v, str))
      raise SniFormatError(f"{path}: field {key!r} must be a string or list of strings, "
                           f"got a list holding {schema.kind(bad)}")
    value = value[0] if value else ""
  if not isinstance(value, str):
    raise SniFormatError(f"{path}: field {key!r} must be a string or list of strings, "
                         f"got {schema.kind(value)}")
  return schema.checked_str(value, path, key, SniFormatError)


def _strings(value, path: str, key: str) -> tuple[str, ...]:
  """A non-empty list of strings (or one string)."""
  if isinstance(value, str):
    value = [value]
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    raise SniFormatError(f"{path}: field {key!r} must be a string or list of strings, "
                         f"got {schema.kind(value)}")
  return tuple(schema.checked_str(v, path, key, SniFormatError) for v in value)


def _list(data: dict, key: str, path: str, required: bool = True) -> list:
  value = _field(data, key, path) if required else data.get(key, [])
  if not isinstance(value, list):
    raise SniFormatError(f"{path}: field {key!r} must be a list, got {schema.kind(value)}")
  return value


def _object(value, path: str, key: str) -> dict:
  if not isinstance(value, dict):
    raise SniFormatError(f"{path}: field {key!r} is not an object (got {schema.kind(value)})")
  return value


def _instances(data: dict, name: str, path: str) -> tuple[Instance, ...]:
  out = []
  for i, inst in enumerate(_list(data, "Instances", path)):
    inst = _object(inst, path, f"Instances[{i}]")
    raw_id = inst.get("id", f"{name}-{i}")
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
      raise SniFormatError(f"{path}: field 'Instances[{i}].id' must be a string, "
                           f"got {schema.kind(raw_id)}")
    where = f"{path} Instances[{i}]"
    outputs = _strings(_field(inst, "output", where), path, f"Instances[{i}].output")
    if not outputs:
      raise SniFormatError(f"{path}: field 'Instances[{i}].output' is empty")
    text = _text(_field(inst, "input", where), path, f"Instances[{i}].input")
    out.append(Instance(schema.checked_str(str(raw_id), path, f"Instances[{i}].id",
                                              SniFormatError), text, outputs))
  return tuple(out)


def _category(data: dict, path: str) -> str:
  """Categories[0] lower-cased with spaces as "_" ("unknown" when absent or empty)."""
  categories = data.get("Categories")
  if categories is None or categories == []:
    return "unknown"
  if not isinstance(categories, list):  # a bare string would become its first letter
    raise SniFormatError(f"{path}: field 'Categories' must be a list of strings, "
                         f"got {schema.kind(categories)}")
  first = _text(categories, path, "Categories")
  return "_".join(first.lower().split()) or "unknown"


def _is_english(data: dict, path: str) -> bool:
  for key in _LANGUAGE_FIELDS:
    if key in data and not isinstance(data[key], list):
      raise SniFormatError(f"{path}: field {key!r} must be a list of strings, "
                           f"got {schema.kind(data[key])}")
    if key in data:
      _strings(data[key], path, key)
  return all(data.get(k, ["English"]) == ["English"] for k in _LANGUAGE_FIELDS)


def parse_task(name: str, text: str, path: str = "<memory>") -> SniTask:
  """Parses the JSON text of one task file, checking every field it reads against the schema:
  Definition (string or list of strings, non-empty), Positive Examples (list of objects with
  string input/output), Instances (list of objects: string input, string or non-empty list of
  string outputs, optional string id), Categories and the *_language fields (lists of strings).

  Raises:
    SniFormatError: malformed JSON, a missing field, a field of the wrong type, an empty
      definition or a lone surrogate (one line naming `path`, the instance and the field).
  """
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise SniFormatError(f"{path}: malformed JSON: {e}") from None
  except RecursionError:
    raise SniFormatError(f"{path}: malformed JSON: nested too deeply") from None
  if not isinstance(data, dict):
    raise SniFormatError(f"{path}: top level is not a JSON object")
  for key in REQUIRED_FIELDS:
    _field(data, key, path)
  definition = _text(data["Definition"], path, "Definition")
  if not definition.strip():
    raise SniFormatError(f"{path}: field 'Definition' is empty")
  examples = []
  for i, ex in enumerate(_list(data, "Positive Examples", path)):
    ex = _object(ex, path, f"Positive Examples[{i}]")
    where = f"{path} Positive Examples[{i}]"
    examples.append(Example(
        _text(_field(ex, "input", where), path, f"Positive Examples[{i}].input"),
        _text(_field(ex, "output", where), path, f"Positive Examples[{i}].output")))
  return SniTask(name, definition, tuple(examples), _instances(data, name, path),
                 _category(data, path), _is_english(data, path))


def task_path(name: str, sni_dir: str | os.PathLike | None = None) -> epath.Path:
  """`<sni_dir>/tasks/<name>.json`, refusing names that would reach outside `tasks/`.

  Raises:
    SniFormatError: the name is not a plain file name (a path separator, '..', NUL, empty).
  """
  if (not isinstance(name, str) or not name or name.startswith(".") or "\x00" in name
      or "/" in name or "\\" in name or os.sep in name
      or (os.altsep is not None and os.altsep in name)):
    raise SniFormatError(f"bad SNI task name {name!r}: a task name is a file name inside "
                         "tasks/ (no path separators, no leading '.')")
  return paths.sni_dir(sni_dir) / "tasks" / f"{name}.json"


def read_task(name: str, sni_dir: str | os.PathLike | None = None) -> SniTask:
  """Reads `<sni_dir>/tasks/<name>.json` (sni_dir defaults to the configured data).

  Raises:
    SniFormatError: a bad task name, no such file, or a malformed file (one line naming it).
  """
  path = task_path(name, sni_dir)
  if not path.exists():
    raise SniFormatError(f"unknown SNI task {name!r}: no file {path}")
  data = path.read_bytes()
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise SniFormatError(f"{path}: not valid UTF-8 (byte {e.start}, line {line})") from None
  return parse_task(name, text, str(path))


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
