"""One life of the preemption drill: the toy run of `reliability_helpers.toy_config`.

Usage: python reliability_preempt_worker.py MODEL_DIR STEPS PERIOD STEP_SLEEP

Prints `DRILL batch <i>` when batch i (the input of step i + 1) is handed to the trainer; on
`loop.Preempted` prints `DRILL preempted <step>` and exits with its code (128 + signal).
"""
import os
import sys
import time

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"  # as the in-process reference
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reliability_helpers
import training_toy_model as toy

from hint_jax.training import loop


def main(model_dir: str, steps: str, period: str, step_sleep: str) -> int:
  data = toy.source()

  def source(start, shard):
    for i, batch in enumerate(data(start, shard), start):
      time.sleep(float(step_sleep))
      print(f"DRILL batch {i}", flush=True)
      yield batch

  cfg = reliability_helpers.toy_config(model_dir, int(steps), int(period))
  try:
    state = loop.train(cfg, toy.ToyModel(), source)
  except loop.Preempted as e:
    print(f"DRILL preempted {e.step}", flush=True)
    print(e, flush=True)
    return e.exit_code
  print(f"DRILL done {int(state.step)}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(*sys.argv[1:]))
