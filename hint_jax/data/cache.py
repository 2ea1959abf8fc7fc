"""Offline task cache: tokenized examples of a task split as ArrayRecord shards plus a manifest.

Layout under a cache directory (local disk, or a mounted bucket):

  <cache_dir>/<task>/<split>/manifest.json      {"kind": "task", "format": 2, "num_examples",
                                                 "examples_per_block", "shards", ...}
  <cache_dir>/<task>/<split>/data-00000.array_record, ...   one record per block of examples
  <cache_dir>/<mixture>/<split>/manifest.json   {"kind": "mixture", "tasks": [{name, rate}]}

An example is a msgpack map as `pipeline.load_task` returns it (int32 token features, decoded
strings; `hint-jax cache-tasks` leaves out the `*_pretokenized` strings unless asked), token
arrays whose ids fit stored as uint16. One ArrayRecord record (a *block*) is a msgpack list of
`examples_per_block` consecutive encoded examples (the last block of a task may be shorter;
shards hold whole blocks), so ArrayRecord's in-memory record index (about 60 bytes per
record) costs 60 / examples_per_block bytes per example, and a reader decodes only the
examples it uses of a block. Files are written with `group_size:1` (a block is read without
its neighbours). Format 1 (one record per example) is refused with a one-line error. A split
is written into a temporary directory that is renamed into place only when complete, so a
reader never sees half-written shards under the final name.
"""
import json
import os
import pathlib
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import msgpack
import numpy as np

FORMAT_VERSION = 2  # 1: one record per example; 2: blocks of examples per record
MANIFEST = "manifest.json"
DEFAULT_EXAMPLES_PER_SHARD = 1_000_000  # fewer files read faster (BENCHMARKS.md)
DEFAULT_EXAMPLES_PER_BLOCK = 128
COMPRESSION = ("uncompressed", "zstd")
_EXT_ARRAY, _EXT_TOKENS16, _EXT_SCALAR = 1, 2, 3
Progress = Callable[[str], None]


class CacheError(ValueError):
  """A cache directory that cannot be read or written; the message names the path."""


def _pack(value):
  if isinstance(value, np.ndarray):
    if value.dtype == np.int32 and value.ndim == 1 and (not value.size or (
        value.min() >= 0 and value.max() < 1 << 16)):
      return msgpack.ExtType(_EXT_TOKENS16, value.astype(np.uint16).tobytes())
    if value.dtype == object:
      return value.tolist()
    meta = msgpack.packb([value.dtype.str, list(value.shape), value.tobytes()])
    return msgpack.ExtType(_EXT_ARRAY, meta)
  if isinstance(value, np.generic):
    return msgpack.ExtType(_EXT_SCALAR, msgpack.packb([value.dtype.str, value.tobytes()]))
  raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _unpack(code: int, data: bytes):
  if code == _EXT_TOKENS16:
    return np.frombuffer(data, np.uint16).astype(np.int32)
  if code == _EXT_ARRAY:
    dtype, shape, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, np.dtype(dtype)).reshape(shape).copy()
  if code == _EXT_SCALAR:
    dtype, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, np.dtype(dtype))[0]
  return msgpack.ExtType(code, data)


def encode_example(example: Mapping[str, object]) -> bytes:
  """One example (token arrays, strings, lists, numpy scalars) -> msgpack bytes."""
  return msgpack.packb(dict(example), default=_pack, use_bin_type=True)


def decode_example(data: bytes) -> dict:
  """Inverse of `encode_example`: token features come back as int32 arrays."""
  return msgpack.unpackb(data, ext_hook=_unpack, raw=False)


def encode_block(encoded_examples: Sequence[bytes]) -> bytes:
  """Encoded examples -> one record (a msgpack list of their bytes)."""
  return msgpack.packb(list(encoded_examples), use_bin_type=True)


def decode_block(record: bytes) -> list[bytes]:
  """Inverse of `encode_block`: the encoded examples of a block (each for `decode_example`)."""
  return msgpack.unpackb(record, raw=False)


def split_dir(cache_dir: str | os.PathLike, name: str, split: str) -> pathlib.Path:
  return pathlib.Path(cache_dir) / name / split


def _prepare_parent(path: pathlib.Path) -> None:
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write-test-{uuid.uuid4().hex}"
    probe.touch()
    probe.unlink()
  except OSError as e:
    raise CacheError(f"cache directory {path} is not writable: {e.strerror or e}") from None


def _commit(tmp: pathlib.Path, final: pathlib.Path, manifest: dict) -> None:
  """Writes the manifest last, then swaps the finished directory in under its final name."""
  (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
  old = None
  if final.exists():
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    final.rename(old)
  tmp.rename(final)
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


def _writer(path: pathlib.Path, compression: str):
  from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
  if compression not in COMPRESSION:
    raise CacheError(f"unknown compression {compression!r}; available: {', '.join(COMPRESSION)}")
  options = "group_size:1," + ("zstd:1" if compression == "zstd" else "uncompressed")
  return array_record_module.ArrayRecordWriter(str(path), options)


def write_task(cache_dir: str | os.PathLike, name: str, split: str,
               examples: Iterable[Mapping[str, object]],
               examples_per_shard: int = DEFAULT_EXAMPLES_PER_SHARD,
               compression: str = "uncompressed", progress: Progress | None = None,
               extra: Mapping[str, object] | None = None,
               examples_per_block: int = DEFAULT_EXAMPLES_PER_BLOCK) -> dict:
  """Writes `examples` (tokenized, in the task's order) as the cache of `name`/`split`.

  Args:
    cache_dir: cache root.
    name: task name; split: split name.
    examples: dicts as `pipeline.load_task` returns them.
    examples_per_shard: examples per ArrayRecord file (rounded up to whole blocks).
    compression: "uncompressed" (fastest reads) or "zstd" (smaller files with strings).
    progress: called with a one-line status now and then.
    extra: json-able values stored in the manifest (e.g. the vocabulary).
    examples_per_block: consecutive examples per ArrayRecord record.

  Returns:
    The manifest written.

  Raises:
    CacheError: the directory is not writable, or there are no examples.
  """
  if examples_per_block < 1 or examples_per_shard < 1:
    raise CacheError(f"examples_per_block {examples_per_block} and examples_per_shard "
                     f"{examples_per_shard} must be positive")
  final = split_dir(cache_dir, name, split)
  _prepare_parent(final.parent)
  tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
  tmp.mkdir()
  try:
    shards = _write_shards(tmp, examples, examples_per_shard, examples_per_block, compression,
                           progress, f"{name}/{split}")
    total = sum(s["num_examples"] for s in shards)
    if not total:
      raise CacheError(f"task {name!r} split {split!r} has no examples; nothing cached")
    manifest = {"kind": "task", "format": FORMAT_VERSION, "name": name, "split": split,
                "num_examples": total, "examples_per_block": examples_per_block,
                "compression": compression, "shards": shards, **dict(extra or {})}
    _commit(tmp, final, manifest)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return manifest


def _write_shards(tmp: pathlib.Path, examples: Iterable[Mapping[str, object]], per_shard: int,
                  per_block: int, compression: str, progress: Progress | None,
                  label: str) -> list[dict]:
  shards: list[dict] = []
  writer, block, total, start = None, [], 0, time.time()

  def flush_block():
    nonlocal writer
    if writer is None:
      filename = f"data-{len(shards):05d}.array_record"
      writer = _writer(tmp / filename, compression)
      shards.append({"file": filename, "num_records": 0, "num_examples": 0})
    writer.write(encode_block(block))
    shards[-1]["num_records"] += 1
    shards[-1]["num_examples"] += len(block)
    block.clear()
    if shards[-1]["num_examples"] >= per_shard:
      writer.close()
      writer = None

  for example in examples:
    block.append(encode_example(example))
    total += 1
    if len(block) == per_block:
      flush_block()
    if progress and total % 10_000 == 0:
      progress(f"{label}: {total} examples ({total / (time.time() - start):.0f}/s)")
  if block:
    flush_block()
  if writer is not None:
    writer.close()
  if progress:
    progress(f"{label}: {total} examples in {len(shards)} shard(s), "
             f"{time.time() - start:.1f}s")
  return shards


def write_mixture(cache_dir: str | os.PathLike, name: str, split: str,
                  rates: Sequence[tuple[str, float]]) -> dict:
  """Records a mixture: its tasks (each cached under its own name) and their mixing rates."""
  final = split_dir(cache_dir, name, split)
  _prepare_parent(final.parent)
  tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
  tmp.mkdir()
  manifest = {"kind": "mixture", "format": FORMAT_VERSION, "name": name, "split": split,
              "tasks": [{"name": t, "rate": float(r)} for t, r in rates]}
  try:
    _commit(tmp, final, manifest)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return manifest


def read_manifest(cache_dir: str | os.PathLike, name: str, split: str) -> dict:
  """The manifest of `name`/`split` in `cache_dir`, checked.

  Raises:
    CacheError: no cache directory, `name`/`split` not cached, a malformed manifest, or a
      shard file missing (one line naming the path).
  """
  root = pathlib.Path(cache_dir)
  if not root.is_dir():
    raise CacheError(f"cache directory {root} does not exist; run `hint-jax cache-tasks`")
  path = split_dir(root, name, split) / MANIFEST
  if not path.is_file():
    cached = sorted(p.parent.relative_to(root).as_posix() for p in root.glob(f"*/*/{MANIFEST}"))
    raise CacheError(f"{name}/{split} is not cached in {root} (no {path.name}); cached: "
                     f"{', '.join(cached) or 'nothing'}; run `hint-jax cache-tasks {name} "
                     f"--split={split} --output_dir={root}`")
  try:
    manifest = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, json.JSONDecodeError) as e:
    raise CacheError(f"cannot read cache manifest {path}: {e}") from None
  if manifest.get("format") != FORMAT_VERSION or manifest.get("kind") not in ("task", "mixture"):
    raise CacheError(f"cache manifest {path} has format {manifest.get('format')!r}, kind "
                     f"{manifest.get('kind')!r}; this version reads format {FORMAT_VERSION} "
                     f"(blocks of examples): re-run `hint-jax cache-tasks {name} "
                     f"--split={split} --output_dir={root}`")
  for shard in manifest.get("shards", ()):
    file = path.parent / shard["file"]
    if not file.is_file():
      raise CacheError(f"cache shard {file} is missing (listed in {path}); re-cache {name}")
  return manifest


def shard_instructions(cache_dir: str | os.PathLike, manifest: Mapping) -> list[str]:
  """ArrayRecord read instructions `path[0:blocks]` of a task's shards (no file is opened)."""
  base = split_dir(cache_dir, manifest["name"], manifest["split"])
  return [f"{base / s['file']}[0:{s['num_records']}]" for s in manifest["shards"]]


def read_examples(cache_dir: str | os.PathLike, manifest: Mapping) -> Iterator[dict]:
  """Every example of a cached task, in the order written (sequential reads, for checks)."""
  from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
  base = split_dir(cache_dir, manifest["name"], manifest["split"])
  for shard in manifest["shards"]:
    reader = array_record_module.ArrayRecordReader(str(base / shard["file"]))
    try:
      for record in reader.read_all():
        yield from map(decode_example, decode_block(record))
    finally:
      reader.close()
