"""One host of the failing-host drill: joins a 2-process run and trains the toy model slowly.

Usage: python reliability_host_worker.py PORT PROCESS_ID MODEL_DIR HEARTBEAT_S
Prints `DRILL batch <i>` per batch; the parent kills one process and times the other's exit.
"""
import os
import sys
import time

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hint_jax.run import distributed


def main(port: str, process_id: str, model_dir: str, heartbeat_s: str) -> None:
  distributed.initialize(f"127.0.0.1:{port}", 2, int(process_id),
                         heartbeat_timeout_s=int(heartbeat_s))
  import reliability_helpers  # pylint: disable=import-outside-toplevel  # tests/training path
  import training_toy_model as toy  # pylint: disable=import-outside-toplevel

  from hint_jax.training import loop  # pylint: disable=import-outside-toplevel
  data = toy.source()

  def source(start, shard):
    for i, batch in enumerate(data(start, shard), start):
      time.sleep(0.1)
      print(f"DRILL batch {i}", flush=True)
      yield batch

  cfg = reliability_helpers.toy_config(model_dir, 10_000, period=1000)
  loop.train(cfg, toy.ToyModel(), source)


if __name__ == "__main__":
  main(*sys.argv[1:])
