"""The `hint-jax` command: parse flags and gin, start multi-host, dispatch train/eval/infer."""
import json
import logging
import os
import re
import sys
from collections.abc import Sequence

from hint_jax.run import gin_utils

# The gin-configured function of each command; gin files bind their arguments.
ENTRY_POINTS = {
    "train": ("hint_jax.run.train", "train"),
    "eval": ("hint_jax.run.evaluate", "evaluate"),
    "infer": ("hint_jax.run.evaluate", "infer"),
}


def run(argv: Sequence[str]) -> object:
  """Runs one command; raises `gin_utils.UsageError` for bad flags or configs."""
  import importlib  # pylint: disable=import-outside-toplevel

  import gin  # pylint: disable=import-outside-toplevel

  from hint_jax.run import distributed  # pylint: disable=import-outside-toplevel
  rest, bindings = gin_utils.split_bindings(argv)
  args = gin_utils.parser().parse_args(rest)
  if not args.gin_file:
    raise gin_utils.UsageError("no --gin_file given (e.g. --gin_file=runs/tiny_cpu.gin)")
  distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                         args.multihost, args.heartbeat_timeout_s)
  if args.max_examples is not None:
    if args.command == "train" or args.max_examples < 1:
      raise gin_utils.UsageError("--max_examples takes an integer >= 1 and applies to eval/infer")
    bindings.append(f"MAX_EXAMPLES={args.max_examples}")
  gin_utils.parse_gin(args.gin_file, bindings, args.gin_search_paths)
  gin_utils.apply_data_settings()  # before the tasks register: their vocabulary is one
  importlib.import_module("hint_jax_tasks")  # registers every hint_jax task and mixture
  module, name = ENTRY_POINTS[args.command]
  fn = getattr(importlib.import_module(module), name)
  try:
    return gin.get_configurable(fn)()
  except TypeError as e:
    if "missing" in str(e) or "REQUIRED" in str(e) or "unexpected" in str(e):
      raise gin_utils.UsageError(f"gin configuration error: {' '.join(str(e).split())}") from e
    raise


def _reported_errors() -> tuple[type[Exception], ...]:
  """Failures shown as one line: bad inputs and files (OSError: missing, unwritable, disk
  full), and run failures whose message already says what to do."""
  from hint_jax.training import checkpoint, loop  # pylint: disable=import-outside-toplevel
  return (OSError, ValueError, loop.NonFiniteLossError, checkpoint.CorruptCheckpointError)


_MISMATCH = re.compile(r"^(checkpoint \S+ was written by a different config):\n  checkpoint: (.*)\n"
                       r"  this run: +(.*)\n(.*)$", re.MULTILINE)


def _one_line(e: Exception) -> str:
  """The error as one line; a config mismatch names only the fields that differ."""
  from hint_jax.training import signature  # pylint: disable=import-outside-toplevel
  text = str(e).split("\n  In call to configurable")[0]  # gin's call context
  match = _MISMATCH.search(text)
  if match:
    diff = signature.differences(match.group(2), match.group(3))
    if diff:
      text = f"{match.group(1)} ({'; '.join(diff)}); {match.group(4)}"
  return " ".join(text.split())


def _serving_command(argv: Sequence[str]):
  """The commands served without gin: `flops`, and `infer` on a jsonl file (`--input`)."""
  from hint_jax.serving import cli  # pylint: disable=import-outside-toplevel
  if argv and argv[0] == "flops":
    return cli.flops_main
  if argv and argv[0] == "infer" and any(a.split("=")[0] == "--input" for a in argv[1:]):
    return cli.infer_main
  return None


def main(argv: Sequence[str] | None = None) -> int:
  """Console-script entry point; returns the exit status.

  `hint-jax train|eval|infer --gin_file=...` run gin-configured jobs; `hint-jax infer
  --model_dir=D --input=requests.jsonl --output=predictions.jsonl` serves a jsonl file of
  {instruction, input} records with the cached Predictor; `hint-jax flops` prints FLOPs tables;
  `hint-jax cache-tasks NAME... --output_dir=D` tokenizes tasks into a streaming cache.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  from hint_jax.run import quiet  # pylint: disable=import-outside-toplevel
  quiet.quiet_orbax()  # restores open checkpoints read-only on purpose
  serving_main = _serving_command(argv)
  if (serving_main is None and argv and argv[0] in ("train", "eval", "infer", "cache-tasks")
      and not {"-h", "--help"} & set(argv)):
    quiet.quiet_tensorflow()  # the data pipeline's TensorFlow, without its CUDA probing noise
  if argv and argv[0] == "cache-tasks":  # tokenize tasks once for the streaming pipeline
    from hint_jax.run import cache_tasks  # pylint: disable=import-outside-toplevel
    return cache_tasks.main(argv[1:])
  if serving_main is not None:
    return serving_main(argv[1:])
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  for noisy in ("absl", "jax", "orbax"):  # per-save orbax chatter; metrics print themselves
    logging.getLogger(noisy).setLevel(logging.WARNING)
  for handler in logging.getLogger().handlers:  # gin logs every include it probes as an ERROR
    handler.addFilter(lambda r: "gin" not in r.pathname.split(os.sep)[-2:-1])
  from hint_jax.training import loop  # pylint: disable=import-outside-toplevel
  try:
    result = run(argv)
  except loop.Preempted as e:  # the step in progress was saved; the same command resumes
    print(f"hint-jax: {e.line}", file=sys.stderr)  # str(e) carries gin's call context
    return e.exit_code
  except KeyboardInterrupt:  # before the training loop (which saves on SIGINT) or outside train
    print("hint-jax: interrupted by SIGINT; nothing saved by this command", file=sys.stderr)
    return 130
  except gin_utils.UsageError as e:
    print(f"hint-jax: error: {e}", file=sys.stderr)
    return 2
  except _reported_errors() as e:
    print(f"hint-jax: error: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
    return 1
  print(json.dumps(result) if isinstance(result, dict) else f"hint-jax: done: {result}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
