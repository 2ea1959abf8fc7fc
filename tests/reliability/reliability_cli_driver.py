"""Runs many `hint-jax` command lines in one process (one JAX import) and reports each outcome.

Usage: python reliability_cli_driver.py CASES.json RESULTS.json
CASES.json: [{"id": ..., "entry": "main" | "infer", "argv": [...]}]. For every case the file
descriptors 1 and 2 are redirected to files, so what the command prints (including logging and
any traceback) is captured exactly as a terminal would show it.
"""
import json
import logging
import os
import sys
import tempfile


def _run(entry: str, argv: list[str]) -> int:
  from hint_jax.run import main  # pylint: disable=import-outside-toplevel
  from hint_jax.serving import cli  # pylint: disable=import-outside-toplevel
  fn = main.main if entry == "main" else cli.infer_main
  try:
    return fn(argv)
  except SystemExit as e:  # argparse usage errors
    return e.code if isinstance(e.code, int) else 1
  except BaseException:  # noqa: BLE001  an escaped exception is what the drill looks for
    import traceback  # pylint: disable=import-outside-toplevel
    traceback.print_exc()
    return 99


def _captured(entry: str, argv: list[str]) -> dict:
  saved = os.dup(1), os.dup(2)
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    try:
      code = _run(entry, argv)
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      for handler in logging.getLogger().handlers:
        handler.flush()
      os.dup2(saved[0], 1)
      os.dup2(saved[1], 2)
      os.close(saved[0])
      os.close(saved[1])
    out.seek(0)
    err.seek(0)
    return {"code": code, "stdout": out.read(), "stderr": err.read()}


def main(cases_path: str, results_path: str) -> None:
  with open(cases_path, encoding="utf-8") as f:
    cases = json.load(f)
  results = {case["id"]: _captured(case["entry"], case["argv"]) for case in cases}
  with open(results_path, "w", encoding="utf-8") as f:
    json.dump(results, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
