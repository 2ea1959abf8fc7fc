"""One process of the 2-process CPU test: trains the toy model and saves the gathered params.

Usage: python training_multiprocess_worker.py PORT PROCESS_ID NUM_PROCESSES MODEL_DIR OUT.npz
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")


def main(port: str, process_id: str, num_processes: str, model_dir: str, out: str) -> None:
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                             num_processes=int(num_processes), process_id=int(process_id))
  import numpy as np  # pylint: disable=import-outside-toplevel
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

  sys.path.insert(0, os.path.dirname(__file__))
  import training_multiprocess_test as spec  # pylint: disable=import-outside-toplevel
  import training_toy_model as toy  # pylint: disable=import-outside-toplevel

  assert jax.process_count() == int(num_processes) and jax.device_count() == 8
  for model_parallel in spec.LAYOUTS:
    state = spec.train(os.path.join(model_dir, str(model_parallel)), toy.source(),
                       model_parallel)
    flat = traverse_util.flatten_dict(state.params(), sep="/")
    gathered = {k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
                for k, v in flat.items()}
    if jax.process_index() == 0:
      np.savez(f"{out}.{model_parallel}.npz", **gathered)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(*sys.argv[1:])
