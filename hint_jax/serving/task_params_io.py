"""Flatten TaskParams to named numpy arrays and back, and save/load them as safetensors."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping

import numpy as np
import safetensors.numpy

from hint_jax.peft import kinds, spec

_STATIC_KEY = "{}_scales"  # metadata key of a kind's static values (LoRA: "lora_scales")


def flatten(task_params: spec.TaskParams) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Names every array `<site>.<kind>.<field>` (LoRA fields are `<projection>.a|b`).

  Returns:
    (arrays, metadata): host numpy arrays, and string metadata carrying each kind's static
    values (the LoRA scales, as json {"<site>.<projection>": scale}).

  Raises:
    ValueError: a site holds an undeclared kind (`peft.kinds.items`).
  """
  arrays, static = {}, {}
  for site in spec.SITES:
    for kind, leaf in kinds.items(getattr(task_params, site)):
      for field, value in kind.fields(leaf).items():
        arrays[f"{site}.{kind.name}.{field}"] = np.asarray(value)
      for key, value in kind.static(leaf).items():
        static.setdefault(kind.name, {})[f"{site}.{key}"] = float(value)
  return arrays, {_STATIC_KEY.format(k): json.dumps(v, sort_keys=True) for k, v in static.items()}


def unflatten(arrays: Mapping[str, np.ndarray],
              metadata: Mapping[str, str] | None = None) -> spec.TaskParams:
  """Inverse of `flatten`.

  Raises:
    ValueError: an array name is not one `flatten` writes, or names an undeclared kind.
  """
  fields: dict = {site: {} for site in spec.SITES}
  for name, value in arrays.items():
    parts = name.split(".", 2)
    if len(parts) < 3 or parts[0] not in spec.SITES:
      raise ValueError(f"not a TaskParams array name: {name!r}")
    if parts[1] not in kinds.KINDS:  # an unknown kind is an error, never dropped
      raise ValueError(f"not a TaskParams array name: {name!r} (unknown generated-module kind "
                       f"{parts[1]!r}; declared: {sorted(kinds.KINDS)})")
    fields[parts[0]].setdefault(parts[1], {})[parts[2]] = value
  static = {k: json.loads((metadata or {}).get(_STATIC_KEY.format(k), "{}")) for k in kinds.KINDS}

  def site(name: str) -> spec.SiteParams:
    def own(kind):  # this site's static values, without the site prefix
      return {k.split(".", 1)[1]: v for k, v in static[kind].items() if k.startswith(f"{name}.")}
    return spec.SiteParams(**{k: kinds.get(k).build(f, own(k)) for k, f in fields[name].items()})
  return spec.TaskParams(**{s: site(s) for s in spec.SITES})


def new_file_mode(path: str) -> int:
  """The permission bits a plain `open(path, "w")` would give: the existing file's, else
  0666 minus the umask (temp files from `mkstemp` start at 0600, which breaks shared dirs)."""
  try:
    return os.stat(path).st_mode & 0o777
  except FileNotFoundError:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to a temp file beside `path`, then renames it (no partial files).

  Safe for concurrent writers in separate processes: each writes its own temp file in the same
  directory and `os.replace` is atomic, so a reader sees one complete file or none. The file
  keeps the mode `new_file_mode` gives, not mkstemp's 0600.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.chmod(tmp, new_file_mode(path))
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save(path: str, task_params: spec.TaskParams,
         extra: Mapping[str, np.ndarray] | None = None,
         metadata: Mapping[str, str] | None = None) -> None:
  """Writes TaskParams (plus optional `extra.<name>` arrays and string `metadata`) to one
  safetensors file, atomically."""
  arrays, meta = flatten(task_params)
  for name, value in (extra or {}).items():
    arrays[f"extra.{name}"] = np.asarray(value)
  arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
  meta.update(metadata or {})
  atomic_write_bytes(path, safetensors.numpy.save(arrays, metadata=meta))


def load(path: str, *, with_metadata: bool = False):
  """Reads a file written by `save`: (TaskParams of numpy arrays, extra arrays by name), plus
  its string metadata when `with_metadata`.

  Raises:
    ValueError: the file is truncated, garbled or not a TaskParams file (one line naming it).
  """
  with open(path, "rb") as f:
    data = f.read()
  try:
    arrays = safetensors.numpy.load(data)
    metadata = _read_metadata(data)
    extra = {k[len("extra."):]: v for k, v in arrays.items() if k.startswith("extra.")}
    params = unflatten({k: v for k, v in arrays.items() if not k.startswith("extra.")},
                       metadata)
  except Exception as e:  # safetensors raises its own SafetensorError (not a ValueError)
    raise ValueError(f"{path}: not a readable TaskParams file ({type(e).__name__}: "
                     f"{' '.join(str(e).split())[:200]})") from e
  return (params, extra, metadata) if with_metadata else (params, extra)


def _read_metadata(data: bytes) -> dict[str, str]:
  header_len = int.from_bytes(data[:8], "little")
  header = json.loads(data[8:8 + header_len])
  return header.get("__metadata__", {})
