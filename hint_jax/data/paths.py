"""Run-wide data settings: the data directory, task vocabulary, P3 tfrecords, pretraining text.

Every setting resolves the same way: the value made current by `configure` (the `hint-jax`
entry points bind `paths.DataSettings` through gin, so `operative_config.gin` records it), else
its `$HINT_*` environment variable, else the built-in default.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

from etils import epath

ENV_VAR = "HINT_DATA_DIR"
_REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = _REPO.parent / "shared" / "data"


@dataclasses.dataclass(frozen=True)
class DataSettings:
  """Settings of the data a run reads; None = the environment variable, else the default.

  Attributes:
    data_dir: data root (local or `gs://`) with `sni/`, `p3_sample/`, optional
      `pretrain_text/`. $HINT_DATA_DIR, default `../shared/data` beside the repository.
    vocab_path: SentencePiece model of the tasks (e.g. T5's `spiece.model`), fixed when the
      tasks register. $HINT_VOCAB_PATH, default the committed 8k vocabulary.
    p3_tfrecords: the P3 tfrecord release instead of `p3_sample`. $HINT_P3_TFRECORDS.
    pretrain_tfds: TFDS name of hyper-pretraining text, e.g. `c4/en:3.1.0`. $HINT_PRETRAIN_TFDS.
    pretrain_max_docs: TFDS document limit. $HINT_PRETRAIN_MAX_DOCS, default 100000.
    pretrain_chunk: hyper-pretraining chunk length in tokens. $HINT_PRETRAIN_CHUNK, default 512.
  """
  data_dir: str | None = None
  vocab_path: str | None = None
  p3_tfrecords: str | None = None
  pretrain_tfds: str | None = None
  pretrain_max_docs: int | None = None
  pretrain_chunk: int | None = None


ENV_VARS = {"data_dir": ENV_VAR, "vocab_path": "HINT_VOCAB_PATH",
            "p3_tfrecords": "HINT_P3_TFRECORDS", "pretrain_tfds": "HINT_PRETRAIN_TFDS",
            "pretrain_max_docs": "HINT_PRETRAIN_MAX_DOCS", "pretrain_chunk": "HINT_PRETRAIN_CHUNK"}
_DEFAULTS = {"data_dir": str(DEFAULT_DATA_DIR), "pretrain_max_docs": 100000,
             "pretrain_chunk": 512}
_INTS = ("pretrain_max_docs", "pretrain_chunk")
_current = DataSettings()


def configure(settings: DataSettings) -> None:
  """Makes `settings` current for this process (its None fields keep environment + default)."""
  global _current
  _current = settings


def setting(name: str):
  """The value of one `DataSettings` field: configured, else $HINT_*, else the default."""
  value = getattr(_current, name)
  if value is None:
    value = os.environ.get(ENV_VARS[name]) or None
  if value is None:
    return _DEFAULTS.get(name)
  return int(value) if name in _INTS else str(value)


def resolved() -> DataSettings:
  """Every field as `setting` resolves it now (what a run reads)."""
  return DataSettings(**{f.name: setting(f.name) for f in dataclasses.fields(DataSettings)})


def data_dir(path: str | os.PathLike | None = None) -> epath.Path:
  """Returns the data root: `path` if given, else the `data_dir` setting.

  Args:
    path: an explicit local path or `gs://` URL.

  Returns:
    An `epath.Path` (works for local paths and `gs://`).
  """
  return epath.Path(path if path is not None else setting("data_dir"))


def sni_dir(path: str | os.PathLike | None = None) -> epath.Path:
  """The natural-instructions checkout: `path` itself if given, else `<data_dir>/sni`."""
  return epath.Path(path) if path is not None else data_dir() / "sni"


def p3_dir(path: str | os.PathLike | None = None) -> epath.Path:
  """The P3 sample directory: `path` itself if given, else `<data_dir>/p3_sample`."""
  return epath.Path(path) if path is not None else data_dir() / "p3_sample"
