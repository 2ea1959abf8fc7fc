"""Resolution of the offline data directory (argument, HINT_DATA_DIR, or the shared default)."""
import os
import pathlib

from etils import epath

ENV_VAR = "HINT_DATA_DIR"
_REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = _REPO.parent / "shared" / "data"


def data_dir(path: str | os.PathLike | None = None) -> epath.Path:
  """Returns the data root: `path` if given, else $HINT_DATA_DIR, else ../shared/data.

  Args:
    path: an explicit local path or `gs://` URL.

  Returns:
    An `epath.Path` (works for local paths and `gs://`).
  """
  chosen = path if path is not None else os.environ.get(ENV_VAR) or DEFAULT_DATA_DIR
  return epath.Path(chosen)


def sni_dir(path: str | os.PathLike | None = None) -> epath.Path:
  """The natural-instructions checkout: `path` itself if given, else `<data_dir>/sni`."""
  return epath.Path(path) if path is not None else data_dir() / "sni"


def p3_dir(path: str | os.PathLike | None = None) -> epath.Path:
  """The P3 sample directory: `path` itself if given, else `<data_dir>/p3_sample`."""
  return epath.Path(path) if path is not None else data_dir() / "p3_sample"
