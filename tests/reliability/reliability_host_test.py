"""Drill 6: in a 2-process run (jax.distributed on 127.0.0.1, gloo), SIGKILL one process; the
survivor must stop with a clear error within a bounded time instead of hanging in a collective.
"""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from reliability_helpers import record

WORKER = pathlib.Path(__file__).with_name("reliability_host_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[2]
HEARTBEAT_S, BOUND_S = 10, 60
FATAL = "Terminating process because the JAX distributed service detected fatal errors"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["worker_dies", "coordinator_dies"])
def test_survivor_exits_with_a_clear_error(tmp_path, victim):
  port, env = _free_port(), {**os.environ, "PYTHONPATH": str(REPO)}
  env.pop("XLA_FLAGS", None)
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(i), str(tmp_path),
                             str(HEARTBEAT_S)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env) for i in range(2)]
  logs, stepping = [[], []], [threading.Event(), threading.Event()]

  def read(i):
    for line in procs[i].stdout:
      logs[i].append(line)
      if line.startswith("DRILL batch 5"):
        stepping[i].set()
  readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
  for t in readers:
    t.start()
  try:
    for event in stepping:  # both processes are inside the training loop's collectives
      assert event.wait(300), "".join(logs[0][-20:] + logs[1][-20:])
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    survivor = procs[1 - victim]
    code = survivor.wait(timeout=BOUND_S)
    seconds = time.perf_counter() - killed
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  readers[1 - victim].join(10)
  text = "".join(logs[1 - victim])
  assert code != 0 and FATAL in text and "another task died" in text, text[-3000:]
  record("failing_host", victim="coordinator" if victim == 0 else "worker",
         survivor_exit_s=round(seconds, 2), heartbeat_timeout_s=HEARTBEAT_S, exit_code=code)
