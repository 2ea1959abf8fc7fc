"""Drill: SIGTERM / SIGINT during training save the step in progress and exit 128 + signal;
running again resumes there, and the final params are bitwise those of an uninterrupted run."""
import os
import pathlib
import signal
import subprocess
import sys

import pytest
from reliability_helpers import assert_bitwise_equal, record

from hint_jax.training import checkpoint

WORKER = pathlib.Path(__file__).with_name("reliability_preempt_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS, PERIOD, STEP_SLEEP = 8, 100, 0.1  # no periodic save before the end: only the signal's


def _life(model_dir: pathlib.Path, signum: int | None = None, at_batch: int = 0):
  """(exit code, output lines) of one worker life, sent `signum` once batch `at_batch` is read."""
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  proc = subprocess.Popen([sys.executable, str(WORKER), str(model_dir), str(STEPS), str(PERIOD),
                           str(STEP_SLEEP)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env)
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line.rstrip("\n"))
      if signum is not None and line.strip() == f"DRILL batch {at_batch}":
        proc.send_signal(signum)
    return proc.wait(timeout=240), lines
  finally:
    if proc.poll() is None:
      proc.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_current_step_and_resume_is_bitwise_equal(reference, tmp_path, signum):
  code, lines = _life(tmp_path, signum, at_batch=3)
  assert code == 128 + signum, "\n".join(lines[-30:])
  preempted = [int(line.split()[2]) for line in lines if line.startswith("DRILL preempted")]
  assert len(preempted) == 1, lines
  saved = checkpoint.Checkpointer(tmp_path / "checkpoints", checkpoint.CheckpointConfig(),
                                  "toy").all_steps()
  # batch 3 feeds step 4; the signal lands while it is read, so step 4 (or 5) is the one saved
  assert saved == preempted and 4 <= preempted[0] < STEPS, (saved, preempted)
  message = [line for line in lines if "resume" in line]
  assert len(message) == 1 and signal.Signals(signum).name in message[0], lines
  code, lines = _life(tmp_path)
  assert code == 0 and f"DRILL done {STEPS}" in lines, "\n".join(lines[-30:])
  assert_bitwise_equal(checkpoint.load_params(tmp_path / "checkpoints", STEPS), reference(STEPS))
  record("preempt", signal=signal.Signals(signum).name, saved_step=preempted[0], steps=STEPS)
