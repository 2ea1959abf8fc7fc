"""Command-line parsing for the entry points: gin files, gin bindings, search paths, multi-host."""
import argparse
import os
import pathlib
from collections.abc import Sequence

import gin

COMMANDS = ("train", "eval", "infer")
DEFAULT_SEARCH_PATH = pathlib.Path(__file__).resolve().parents[2] / "gin_configs"


class UsageError(Exception):
  """A bad command line or gin configuration; reported as one line with a non-zero exit."""


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):
    raise UsageError(f"bad command line: {message}")


def parser() -> argparse.ArgumentParser:
  p = _Parser(
      prog="hint-jax", description="Train, evaluate or run inference with HINT models.",
      epilog="Bindings: --gin.KEY=VALUE (e.g. --gin.MODEL_DIR=\"'/tmp/run'\"), repeatable.")
  p.add_argument("command", choices=COMMANDS)
  p.add_argument("--gin_file", action="append", default=[],
                 help="gin file (repeatable), absolute or relative to a search path")
  p.add_argument("--gin_search_paths", default=str(DEFAULT_SEARCH_PATH),
                 help="comma-separated directories searched for gin files and includes")
  p.add_argument("--coordinator_address", default=os.environ.get("JAX_COORDINATOR_ADDRESS"),
                 help="host:port of process 0 for multi-host runs (env JAX_COORDINATOR_ADDRESS)")
  p.add_argument("--num_processes", type=int,
                 default=int(os.environ.get("JAX_NUM_PROCESSES", "1")))
  p.add_argument("--process_id", type=int, default=int(os.environ.get("JAX_PROCESS_ID", "0")))
  p.add_argument("--multihost", action="store_true",
                 help="call jax.distributed.initialize() with auto-detection (TPU pods, SLURM)")
  p.add_argument("--heartbeat_timeout_s", type=int, default=None,
                 help="multi-host: stop with an error when a process has been silent this long "
                      "(default: JAX's 100 s)")
  return p


def split_bindings(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """(other args, gin bindings) where every `--gin.KEY=VALUE` becomes `KEY=VALUE`."""
  rest, bindings = [], []
  for arg in argv:
    if arg.startswith("--gin."):
      binding = arg[len("--gin."):]
      if "=" not in binding:
        raise UsageError(f"bad gin binding {arg!r}: expected --gin.KEY=VALUE")
      bindings.append(binding)
    else:
      rest.append(arg)
  return rest, bindings


def _resolve(name: str, search_paths: Sequence[str]) -> str:
  if os.path.isabs(name) or os.path.exists(name):
    if not os.path.exists(name):
      raise UsageError(f"gin file not found: {name}")
    return name
  for root in search_paths:
    candidate = os.path.join(root, name)
    if os.path.exists(candidate):
      return candidate
  raise UsageError(f"gin file not found: {name} (searched {', '.join(search_paths)})")


def parse_gin(files: Sequence[str], bindings: Sequence[str], search_paths: str) -> None:
  """Parses gin files and bindings; any gin error becomes a one-line `UsageError`."""
  paths = [p for p in search_paths.split(",") if p]
  gin.clear_config()  # a fresh configuration per command (also when called in-process)
  for path in paths:
    gin.add_config_file_search_path(path)
  resolved = [_resolve(f, paths) for f in files]
  try:
    gin.parse_config_files_and_bindings(resolved, bindings, finalize_config=True)
  except (ValueError, KeyError, NameError, TypeError, ImportError, SyntaxError, AttributeError,
          OSError) as e:
    raise UsageError(f"gin configuration error: {' '.join(str(e).split())}") from e


def write_config(model_dir: str, name: str = "operative_config.gin") -> str:
  """Writes gin's operative config (what was actually used) into `model_dir`."""
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, name)
  with open(path, "w", encoding="utf-8") as f:
    f.write(gin.operative_config_str())
  return path


def config_str() -> str:
  return gin.config_str()
