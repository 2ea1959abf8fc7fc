"""Two CPU processes (gloo) x 4 devices train like one process with 8 devices on the same batches."""
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import training_toy_model as toy
from flax import traverse_util

from hint_jax.parallel import mesh as mesh_lib
from hint_jax.training import checkpoint, loop, optim
from hint_jax.training import config as config_lib

WORKER = pathlib.Path(__file__).with_name("training_multiprocess_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[2]


def train(model_dir, data):
  """The run both sides execute: 3 steps, data 4 x model 2, microbatches, a checkpoint."""
  cfg = config_lib.TrainConfig(
      model_dir=str(model_dir), train_steps=3, optim=optim.OptimConfig(learning_rate=1e-2),
      mesh=mesh_lib.MeshConfig(model_parallel=2), num_microbatches=2,
      checkpoint=checkpoint.CheckpointConfig(period=2), peak_flops=1e9, progress_bar=False)
  return loop.train(cfg, toy.ToyModel(), data)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
  port, out = _free_port(), tmp_path / "multi.npz"
  env = {**os.environ, "PYTHONPATH": f"{REPO}:{WORKER.parent}"}
  env.pop("XLA_FLAGS", None)
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(i), "2",
                             str(tmp_path / "multi"), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=240)[0])
    finally:
      if p.poll() is None:
        p.kill()
  assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
  assert sorted(os.listdir(tmp_path / "multi" / "checkpoints")) == ["2", "3"]

  single = train(tmp_path / "single", toy.source())
  assert jax.process_count() == 1 and jax.device_count() == 8
  want = traverse_util.flatten_dict(jax.device_get(single.params()), sep="/")
  got = dict(np.load(out))
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_allclose(got[k], np.asarray(want[k]), atol=1e-5, rtol=0, err_msg=k)
