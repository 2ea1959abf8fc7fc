"""Command-line parsing for the entry points: gin files, gin bindings, search paths, multi-host."""
import argparse
import difflib
import importlib.util
import os
import pathlib
import re
from collections.abc import Sequence

import gin

from hint_jax.data import paths as data_paths

COMMANDS = ("train", "eval", "infer")


def _gin_configs() -> pathlib.Path:
  """The gin files: the package `hint_jax_gin_configs` (setup.py installs the top-level
  `gin_configs/` under that name), else the folder beside this checkout."""
  spec = importlib.util.find_spec("hint_jax_gin_configs")
  if spec is not None and spec.submodule_search_locations:
    return pathlib.Path(next(iter(spec.submodule_search_locations)))
  return pathlib.Path(__file__).resolve().parents[2] / "gin_configs"


DEFAULT_SEARCH_PATH = _gin_configs()


class UsageError(Exception):
  """A bad command line or gin configuration; reported as one line with a non-zero exit."""


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):
    raise UsageError(f"bad command line: {message}")


USAGE = """commands:
  train --gin_file=F ...        train (gin_configs/runs/*.gin; SIGTERM/SIGINT save and stop)
  eval  --gin_file=F ...        the paper's metrics by task: SNI ROUGE-L/EM, P3 rank accuracy
  infer --gin_file=F ...        decode a task's split into jsonl
  infer --model_dir=D --input=requests.jsonl --output=predictions.jsonl
                                serve {instruction, input} records (hint-jax infer --input=x --help)
  flops                         FLOPs tables, HINT vs concat (hint-jax flops --help)
  cache-tasks NAME... --output_dir=D
                                tokenize tasks once for streaming (hint-jax cache-tasks --help)

Bindings: --gin.KEY=VALUE (e.g. --gin.MODEL_DIR="'/tmp/run'"; strings quoted), repeatable."""


def parser() -> argparse.ArgumentParser:
  p = _Parser(
      prog="hint-jax", description="Train, evaluate or run inference with HINT models.",
      epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("command", choices=COMMANDS, help="train, eval or infer (see commands below)")
  p.add_argument("--gin_file", action="append", default=[],
                 help="gin file (repeatable), absolute or relative to a search path")
  p.add_argument("--max_examples", type=int, default=None,
                 help="eval/infer: at most N examples of each task (sets gin MAX_EXAMPLES)")
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


_GIN_ERRORS = (ValueError, KeyError, NameError, TypeError, ImportError, SyntaxError,
               AttributeError, OSError)
_UNPARSABLE = ("Unable to parse value", "Failed to parse token", "malformed node")
_UNDEFINED_MACRO = re.compile(r"No bindings specified for '([\w.]+)/gin\.macro'")


def _one_line(e: Exception) -> str:
  text = " ".join(str(e).split())
  return text.split(" in config string:")[0]  # gin appends the whole configuration


def _macros() -> tuple[set[str], set[str]]:
  """(macros defined, macros referenced) by what gin has parsed so far."""
  text = gin.config_str()
  defined = set(re.findall(r"^([A-Za-z_][\w/]*) = ", text, flags=re.MULTILINE))
  return defined, set(re.findall(r"%([A-Za-z_][\w.]*)", text))


def _hint(name: str, names: set[str]) -> str:
  close = difflib.get_close_matches(name, sorted(names), n=1)
  return f" (did you mean {close[0]}?)" if close else ""


def _check_macro(binding: str, bindings: Sequence[str], defined: set[str], used: set[str]):
  """A command-line `NAME=VALUE` must set a macro the gin files define or use (or another
  binding uses): a misspelled macro would otherwise be a new, unused one."""
  key = binding.split("=", 1)[0].strip()
  if "." in key or "/" in key or key in defined | used:
    return
  if any(re.search(rf"%{re.escape(key)}\b", b) for b in bindings):
    return
  raise UsageError(f"unknown gin macro {key} in --gin.{binding}{_hint(key, defined | used)}: "
                   "no gin file defines or uses it")


def _parse_binding(binding: str) -> None:
  try:
    gin.parse_config(binding)
  except _GIN_ERRORS as e:
    key, _, value = binding.partition("=")
    if any(m in str(e) for m in _UNPARSABLE):
      raise UsageError(
          f"bad value in --gin.{binding}: not a gin value; quote strings, e.g. "
          f"--gin.{key.strip()}=\"'{value.strip()}'\"") from e
    raise UsageError(f"gin configuration error in --gin.{binding}: {_one_line(e)}") from e


def _finalize(bindings: Sequence[str], defined: set[str]) -> None:
  try:
    gin.finalize()
  except _GIN_ERRORS as e:
    match = _UNDEFINED_MACRO.search(str(e))
    if not match:
      raise UsageError(f"gin configuration error: {_one_line(e)}") from e
    name = match.group(1)
    where = [b for b in bindings if re.search(rf"%{re.escape(name)}\b", b)]
    place = f"--gin.{where[0]}" if where else "the gin files"
    raise UsageError(f"undefined gin macro %{name} in {place}{_hint(name, defined)}") from e


def parse_gin(files: Sequence[str], bindings: Sequence[str], search_paths: str) -> None:
  """Parses gin files, then each binding; any gin error becomes a one-line `UsageError`
  naming the binding (unknown macros and unquoted strings included)."""
  paths = [p for p in search_paths.split(",") if p]
  gin.clear_config()  # a fresh configuration per command (also when called in-process)
  for path in paths:
    gin.add_config_file_search_path(path)
  resolved = [_resolve(f, paths) for f in files]
  try:
    gin.parse_config_files_and_bindings(resolved, [], finalize_config=False)
  except _GIN_ERRORS as e:
    raise UsageError(f"gin configuration error: {_one_line(e)}") from e
  defined, used = _macros()
  for binding in bindings:
    _check_macro(binding, bindings, defined, used)
    _parse_binding(binding)
  _finalize(bindings, defined | _macros()[0])


def apply_data_settings() -> data_paths.DataSettings:
  """Makes the gin-bound `paths.DataSettings` current; returns the settings the run reads.

  Fields the gin files leave unbound are bound to what they resolve to now ($HINT_*
  environment variables, else the defaults), so `operative_config.gin` records every data
  setting of the run; only the fields bound in gin override the environment in this process.
  """
  bound, lines = {}, ["from __gin__ import dynamic_registration",
                      "from hint_jax.data import paths"]
  current = data_paths.resolved()
  for field in data_paths.ENV_VARS:
    try:
      bound[field] = gin.query_parameter(f"hint_jax.data.paths.DataSettings.{field}")
    except ValueError:
      lines.append(f"paths.DataSettings.{field} = {getattr(current, field)!r}")
  with gin.unlock_config():
    gin.parse_config("\n".join(lines))
  data_paths.configure(data_paths.DataSettings(**bound))
  return gin.get_configurable(data_paths.DataSettings)()


def write_config(model_dir: str, name: str = "operative_config.gin") -> str:
  """Writes gin's operative config (what was actually used) into `model_dir`."""
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, name)
  with open(path, "w", encoding="utf-8") as f:
    f.write(gin.operative_config_str())
  return path


def config_str() -> str:
  return gin.config_str()
