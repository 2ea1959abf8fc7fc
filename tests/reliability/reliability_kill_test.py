"""Drill 1: SIGKILL a training run at seeded random moments (inside a step, inside an async
checkpoint save), resume each time; the final params are bitwise those of an uninterrupted run.
"""
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from reliability_helpers import assert_bitwise_equal, record

from hint_jax.training import checkpoint

WORKER = pathlib.Path(__file__).with_name("reliability_kill_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS, PERIOD, STEP_SLEEP, SAVE_DELAY = 8, 2, 0.15, 0.6


class _Life:
  """One worker process; `until(pattern)` reads its progress lines."""

  def __init__(self, model_dir: pathlib.Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    self.proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(model_dir), str(STEPS), str(PERIOD), str(STEP_SLEEP),
         str(SAVE_DELAY)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    self.last_batch, self.log = -1, []
    self._watchdog = threading.Timer(240, self.proc.kill)
    self._watchdog.start()

  def until(self, wanted: str) -> bool:
    """Reads lines until `DRILL <wanted>`; False when the run ended first."""
    for line in self.proc.stdout:
      self.log.append(line)
      if line.startswith("DRILL batch "):
        self.last_batch = int(line.split()[2])
      if line.strip() == f"DRILL {wanted}":
        return True
    return False

  def kill(self) -> None:
    self.proc.send_signal(signal.SIGKILL)
    self.finish()

  def finish(self) -> int:
    for line in self.proc.stdout:
      self.log.append(line)
    code = self.proc.wait()
    self._watchdog.cancel()
    return code


def _save_in_flight(log: list[str], latest: int) -> tuple[bool, int]:
  """(was a save newer than `latest` started, steps begun since it started).

  With a save in flight the trainer keeps stepping, so a kill then loses the period being saved
  plus the steps taken while it was written; otherwise at most one period.
  """
  starts = [i for i, line in enumerate(log) if line.startswith("DRILL saving ")
            and int(line.split()[2]) > latest]
  if not starts:
    return False, 0
  return True, sum(line.startswith("DRILL batch ") for line in log[starts[0]:])


def _check_all_readable(ckpt_dir: pathlib.Path) -> int | None:
  """Every step directory is complete and loadable; returns the newest step (None: none yet)."""
  if not ckpt_dir.exists():
    return None
  numeric = sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
  assert checkpoint.Checkpointer(ckpt_dir, checkpoint.CheckpointConfig(), "toy").all_steps() == (
      numeric)
  for step in numeric:
    params = checkpoint.load_params(ckpt_dir, step)  # raises if any array is unreadable
    assert params, step
  return numeric[-1] if numeric else None


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bitwise_equal(reference, tmp_path):
  rng = random.Random(8)  # seeded moments
  ckpt_dir, latest, kills = tmp_path / "checkpoints", None, []
  for n, where in enumerate(("save", "step", "save", "step")):
    life, start = _Life(tmp_path), time.perf_counter()
    base = latest or 0
    if where == "save":
      reached = life.until(f"saving {base + PERIOD}")
      time.sleep(rng.uniform(0.05, 0.8) * SAVE_DELAY)
    else:
      reached = life.until(f"batch {base + rng.randint(1, PERIOD + 1)}")
      time.sleep(rng.uniform(0.0, 1.0) * STEP_SLEEP)
    assert reached, "".join(life.log[-30:])
    life.kill()
    latest = _check_all_readable(ckpt_dir)
    lost = life.last_batch + 1 - (latest or 0)  # batch i feeds step i + 1
    in_flight, during_save = _save_in_flight(life.log, latest or 0)
    assert lost <= PERIOD + during_save, (n, where, life.last_batch, latest, in_flight)
    kills.append({"where": where, "in_flight_save": in_flight, "steps_during_save": during_save,
                  "at_batch": life.last_batch, "resume_from": latest or 0, "lost_steps": lost,
                  "life_s": round(time.perf_counter() - start, 2)})
  life, start = _Life(tmp_path), time.perf_counter()
  assert life.until(f"done {STEPS}") and life.finish() == 0, "".join(life.log[-30:])
  assert _check_all_readable(ckpt_dir) == STEPS
  assert_bitwise_equal(checkpoint.load_params(ckpt_dir, STEPS), reference(STEPS))
  record("kill", kills=kills, final_life_s=round(time.perf_counter() - start, 2),
         max_lost_steps=max(k["lost_steps"] for k in kills), period=PERIOD)
