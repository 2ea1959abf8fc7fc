"""Two CPU processes (gloo) x 4 devices train like one process with 8 devices on the same batches,
for every data x model layout: model groups inside a process, across both, and processes holding
several data groups."""
import os
import pathlib
import socket
import subprocess
import sys
import types

import jax
import numpy as np
import pytest
import training_toy_model as toy
from flax import traverse_util

from hint_jax.parallel import mesh as mesh_lib
from hint_jax.training import batches, checkpoint, loop, optim
from hint_jax.training import config as config_lib

WORKER = pathlib.Path(__file__).with_name("training_multiprocess_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[2]


LAYOUTS = (2, 4, 8)  # model_parallel: data 4 x model 2, 2 x 4, 1 x 8 (model across processes)


def train(model_dir, data, model_parallel=2):
  """The run both sides execute: 3 steps, data x model, microbatches, a checkpoint."""
  cfg = config_lib.TrainConfig(
      model_dir=str(model_dir), train_steps=3, optim=optim.OptimConfig(learning_rate=1e-2),
      mesh=mesh_lib.MeshConfig(model_parallel=model_parallel), num_microbatches=2,
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
  single = train(tmp_path / "single", toy.source())
  assert jax.process_count() == 1 and jax.device_count() == 8
  want = traverse_util.flatten_dict(jax.device_get(single.params()), sep="/")
  for model_parallel in LAYOUTS:
    run = tmp_path / "multi" / str(model_parallel)
    assert sorted(os.listdir(run / "checkpoints")) == ["2", "3"]
    got = dict(np.load(f"{out}.{model_parallel}.npz"))
    assert got.keys() == want.keys()
    for k in want:
      np.testing.assert_allclose(got[k], np.asarray(want[k]), atol=1e-5, rtol=0,
                                 err_msg=f"model_parallel={model_parallel}: {k}")


def test_input_shards_of_each_layout():
  """Which block of the global batch each of 2 processes x 4 devices feeds."""
  devices = [types.SimpleNamespace(id=i, process_index=i // 4) for i in range(8)]

  def shards(model_parallel, order=range(8)):
    grid = np.asarray([devices[i] for i in order], dtype=object).reshape(-1, model_parallel)
    mesh = types.SimpleNamespace(devices=grid, shape={"data": grid.shape[0]})
    return [batches.input_shard(mesh, p) for p in (0, 1)]

  S = batches.InputShard
  assert shards(8) == [S(0, 1), S(0, 1)]  # one data group across both: identical rows
  assert shards(4) == [S(0, 2), S(1, 2)]
  assert shards(2) == [S(0, 2), S(1, 2)]  # each process feeds two data groups
  assert shards(1) == [S(0, 2), S(1, 2)]
  assert shards(2, order=[0, 4, 1, 5, 2, 6, 3, 7]) == [S(0, 1), S(0, 1)]  # all groups span both
  with pytest.raises(ValueError, match="contiguous run of data rows"):
    shards(2, order=[0, 1, 4, 5, 2, 3, 6, 7])  # process 0 holds data rows 0 and 2
  with pytest.raises(ValueError, match="contiguous run of data rows"):
    shards(2, order=[0, 1, 2, 4, 3, 5, 6, 7])  # rows 0-2 and 1-3: overlapping, not equal
