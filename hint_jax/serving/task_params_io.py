"""Flatten TaskParams to named numpy arrays and back, and save/load them as safetensors."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping

import numpy as np
import safetensors.numpy

from hint_jax.peft import spec

_BOTTLENECK = ("down", "down_bias", "up", "up_bias")
_PREFIX = ("key", "value")
_SCALES_KEY = "lora_scales"


def flatten(task_params: spec.TaskParams) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Names every array `<site>.<kind>[.<projection>].<field>`.

  Returns:
    (arrays, metadata): host numpy arrays, and string metadata carrying the static LoRA scales.
  """
  arrays, scales = {}, {}
  for site in spec.SITES:
    sp: spec.SiteParams = getattr(task_params, site)
    for proj, low in (sp.lora or {}).items():
      arrays[f"{site}.lora.{proj}.a"] = np.asarray(low.a)
      arrays[f"{site}.lora.{proj}.b"] = np.asarray(low.b)
      scales[f"{site}.{proj}"] = float(low.scale)
    if sp.adapter is not None:
      for f in _BOTTLENECK:
        arrays[f"{site}.adapter.{f}"] = np.asarray(getattr(sp.adapter, f))
    if sp.prefix is not None:
      for f in _PREFIX + ("mask",) * (sp.prefix.mask is not None):
        arrays[f"{site}.prefix.{f}"] = np.asarray(getattr(sp.prefix, f))
  return arrays, {_SCALES_KEY: json.dumps(scales, sort_keys=True)}


def _site(arrays: Mapping[str, np.ndarray], scales: Mapping[str, float],
          site: str) -> spec.SiteParams:
  lora = {}
  for name in sorted(arrays):
    parts = name.split(".")
    if parts[0] == site and parts[1] == "lora" and parts[3] == "a":
      proj = parts[2]
      lora[proj] = spec.LowRank(a=arrays[name], b=arrays[f"{site}.lora.{proj}.b"],
                                scale=scales[f"{site}.{proj}"])
  adapter = prefix = None
  if f"{site}.adapter.down" in arrays:
    adapter = spec.Bottleneck(**{f: arrays[f"{site}.adapter.{f}"] for f in _BOTTLENECK})
  if f"{site}.prefix.key" in arrays:
    prefix = spec.PrefixKV(**{f: arrays[f"{site}.prefix.{f}"] for f in _PREFIX},
                           mask=arrays.get(f"{site}.prefix.mask"))
  return spec.SiteParams(lora=lora or None, adapter=adapter, prefix=prefix)


def unflatten(arrays: Mapping[str, np.ndarray],
              metadata: Mapping[str, str] | None = None) -> spec.TaskParams:
  """Inverse of `flatten`.

  Raises:
    ValueError: an array name is not one `flatten` writes.
  """
  known = {"lora", "adapter", "prefix"}
  for name in arrays:
    parts = name.split(".")
    if len(parts) < 3 or parts[0] not in spec.SITES or parts[1] not in known:
      raise ValueError(f"not a TaskParams array name: {name!r}")
  scales = json.loads((metadata or {}).get(_SCALES_KEY, "{}"))
  return spec.TaskParams(**{s: _site(arrays, scales, s) for s in spec.SITES})


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
