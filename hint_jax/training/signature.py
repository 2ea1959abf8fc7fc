"""Checkpoint signatures: the semantic fields of a run's config, compared when a run resumes.

A signature lists every field of a (nested) config dataclass as `name=value`, nested fields
flattened with dots (`t5.d_model=512`), and marks a field that holds its default with `*`
after its name (`fusion*=True`); `TrainConfig.full_signature` appends ` | optim=...` for the
optimizer fields that shape the saved state. A resume is refused when a field both signatures
name differs, when the checkpoint names a field this run lacks, or when this run names a field
the checkpoint lacks with a value other than its default. So adding a defaulted field to a
config keeps every existing run resumable, while any real change is named. Array shapes are
checked on restore separately (`checkpoint.Checkpointer.restore`). Older checkpoints stored
`repr(config)` (`HintConfig(t5=T5Config(...), ...)`): it parses to the same names, unmarked.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

DEFAULT_MARK = "*"


def _default(field: dataclasses.Field) -> Any:
  if field.default is not dataclasses.MISSING:
    return field.default
  if field.default_factory is not dataclasses.MISSING:
    return field.default_factory()
  return dataclasses.MISSING


def _entries(config: Any, prefix: str = "") -> list[str]:
  out = []
  for field in dataclasses.fields(config):
    value, name = getattr(config, field.name), prefix + field.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
      out += _entries(value, name + ".")
    else:
      mark = DEFAULT_MARK if _same(value, _default(field)) else ""
      out.append(f"{name}{mark}={value!r}")
  return out


def _same(a: Any, b: Any) -> bool:
  try:
    return bool(a == b) and type(a) is type(b)
  except (TypeError, ValueError):  # arrays and other odd values: never a default
    return False


def describe(config: Any) -> str:
  """The signature of a config dataclass: `Name(a=1, b.c*=2, ...)` (module docstring)."""
  return f"{type(config).__name__}({', '.join(_entries(config))})"


def _split_top(text: str) -> list[str]:
  """`text` split at the commas outside brackets and quotes."""
  parts, depth, quote, start = [], 0, None, 0
  for i, ch in enumerate(text):
    if quote:
      quote = None if ch == quote else quote
    elif ch in "'\"":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == "," and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  return [p.strip() for p in [*parts, text[start:]] if p.strip()]


def _fields(text: str, prefix: str = "") -> dict[str, tuple[str, bool]]:
  """{'t5.d_model': ('32', False), 'fusion': ('True', True), ...} from a signature or a
  dataclass repr; any other text is one field named ''."""
  match = re.fullmatch(r"\s*[A-Za-z_]\w*\((.*)\)\s*", text, flags=re.DOTALL)
  if not match:
    return {prefix.rstrip("."): (text.strip(), False)}
  out = {}
  for part in _split_top(match.group(1)):
    key, eq, value = part.partition("=")
    key = key.strip()
    if not eq or not re.fullmatch(r"[\w.]+\*?", key):
      return {prefix.rstrip("."): (text.strip(), False)}
    if key.endswith(DEFAULT_MARK):
      out[prefix + key[:-1]] = (value.strip(), True)
    else:
      out.update(_fields(value, f"{prefix}{key}."))
  return out


def parse(sig: str) -> dict[str, tuple[str, bool]]:
  """Every field of a full signature (`model | optim=... frozen=[...]`) as (value, default)."""
  head, _, tail = (sig or "").partition(" | ")
  out = _fields(head)
  out.update({k: (v, False) for k, v in re.findall(r"(\w+)=(\[[^\]]*\]|\S+)", tail)})
  return out


def differences(saved: str, current: str) -> list[str]:
  """`field: checkpoint X, this run Y` for every field that makes `current` unable to resume
  a checkpoint of `saved` (module docstring); [] when it can."""
  a, b = parse(saved), parse(current)
  out = []
  for key in sorted(a.keys() | b.keys()):
    if key in a and key in b and a[key][0] == b[key][0]:
      continue
    if key not in a and b[key][1]:  # a field added since, at its default
      continue
    out.append(f"{key or 'signature'}: checkpoint {a[key][0] if key in a else '(absent)'}, "
               f"this run {b[key][0] if key in b else '(absent)'}")
  return out


def compatible(saved: str | None, current: str) -> bool:
  """Whether a run with signature `current` may resume a checkpoint written with `saved`."""
  return saved is not None and not differences(saved, current)
