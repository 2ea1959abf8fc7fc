"""One life of the kill drill: the toy run of `reliability_helpers.toy_config`, narrated.

Usage: python reliability_kill_worker.py MODEL_DIR STEPS PERIOD STEP_SLEEP SAVE_DELAY

Prints `DRILL batch <i>` when batch i (the input of step i + 1) is handed to the trainer and
`DRILL saving <step>` / `DRILL saved <step>` around the (background) checkpoint write, which a
slow disk stretches by SAVE_DELAY seconds so that the parent can kill the run inside it.
"""
import asyncio
import os
import sys
import time

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"  # as the in-process reference
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reliability_helpers
import training_toy_model as toy
from orbax.checkpoint._src.handlers import json_checkpoint_handler

from hint_jax.training import loop


def _say(text: str) -> None:
  print(f"DRILL {text}", flush=True)


def main(model_dir: str, steps: str, period: str, step_sleep: str, save_delay: str) -> None:
  data = toy.source()
  handler = json_checkpoint_handler.JsonCheckpointHandler
  real_save = handler._save_fn  # pylint: disable=protected-access

  async def slow_save(self, item, directory):
    _say(f"saving {item.get('data_step')}")
    await asyncio.sleep(float(save_delay))  # a slow disk
    result = await real_save(self, item, directory)
    _say(f"saved {item.get('data_step')}")
    return result

  handler._save_fn = slow_save  # pylint: disable=protected-access

  def source(start, shard):
    for i, batch in enumerate(data(start, shard), start):
      time.sleep(float(step_sleep))
      _say(f"batch {i}")
      yield batch

  cfg = reliability_helpers.toy_config(model_dir, int(steps), int(period))
  state = loop.train(cfg, toy.ToyModel(), source)
  _say(f"done {int(state.step)}")


if __name__ == "__main__":
  main(*sys.argv[1:])
