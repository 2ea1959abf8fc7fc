"""Preemption: SIGTERM/SIGINT ask the training loop to save the step in progress and stop."""
import contextlib
import os
import signal
import threading
from typing import Any

import jax


class Preempted(Exception):
  """SIGTERM or SIGINT stopped training after a step; that step was checkpointed.

  `exit_code` is the shell's 128 + signal number (143 for SIGTERM, 130 for SIGINT).
  """

  def __init__(self, signum: int, step: int, directory: str):
    self.signum, self.step, self.directory = signum, step, directory
    self.exit_code = 128 + signum
    self.line = (f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint saved "
                 f"in {directory}; run the same command again to resume from it")
    super().__init__(self.line)


class StopRequest:
  """Set by the first SIGTERM/SIGINT (T5X-style preemption); the loop reads it after each step.

  A second signal while the checkpoint is being written stops at once (the previous handlers'
  behaviour). With several processes the signal is JAX's preemption notice (its coordination
  service agrees on the step, `multihost_utils.reached_preemption_sync_point`), so every
  process saves the same step; no Python handler is installed then.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def _handle(self, signum, frame):
    if self.signum is not None:  # second signal: give up on the save
      self.restore()
      previous = signal.getsignal(signum)
      if callable(previous):
        previous(signum, frame)
      else:
        os.kill(os.getpid(), signum)
      return
    self.signum = signum

  @contextlib.contextmanager
  def installed(self):
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    try:
      yield self
    finally:
      self.restore()

  def restore(self) -> None:
    for s, h in self._previous.items():
      signal.signal(s, h)
    self._previous = {}

  def stop_after(self, step: int) -> int | None:
    """The signal to stop for after `step` (None: keep going)."""
    if jax.process_count() == 1:
      return self.signum
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    try:
      return signal.SIGTERM if multihost_utils.reached_preemption_sync_point(step) else None
    except RuntimeError:  # no preemption service (jax.distributed without it)
      return None
