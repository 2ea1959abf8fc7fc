"""Manual drill 3b (needs root to mount): a real full disk under the toy training run.

Usage: sudo .venv/bin/python tests/reliability/reliability_tmpfs_drill.py [FREE_BYTES]

Mounts a 2 MiB tmpfs, trains 2 steps into it (checkpoint 2), fills the disk leaving FREE_BYTES
(default 40000: TensorBoard's event file still fits, checkpoint 4 does not), resumes to step 6
and reports the error; then frees the space and resumes again. The pytest drill injects the same
failure without root (reliability_checkpoint_test.py).
"""
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reliability_helpers as helpers  # puts tests/training on sys.path
import training_toy_model as toy

from hint_jax.training import checkpoint, loop


def _fill(path: str, free_bytes: int) -> None:
  try:
    with open(path, "wb") as f:
      while True:
        f.write(b"\0" * 4096)
        f.flush()
  except OSError:
    pass
  if free_bytes:
    os.truncate(path, max(os.path.getsize(path) - free_bytes, 0))


def main(free_bytes: int = 40_000) -> None:
  mnt = tempfile.mkdtemp(prefix="hint_tmpfs_")
  subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
  try:
    run = os.path.join(mnt, "run")
    loop.train(helpers.toy_config(run, 2), toy.ToyModel(), toy.source())
    _fill(os.path.join(mnt, "filler"), free_bytes)
    start = time.perf_counter()
    try:
      loop.train(helpers.toy_config(run, 6), toy.ToyModel(), toy.source())
      print("RESULT no error (the disk was not full enough)")
    except Exception as e:  # noqa: BLE001  reporting whatever the run raised is the point
      print(f"RESULT error after {time.perf_counter() - start:.1f} s: {type(e).__name__}: "
            f"{' '.join(str(e).split())}")
    ckpt_dir = os.path.join(run, "checkpoints")
    steps = checkpoint.Checkpointer(ckpt_dir, checkpoint.CheckpointConfig(), "toy").all_steps()
    print(f"RESULT complete checkpoints {steps}; step 2 arrays readable: "
          f"{len(checkpoint.load_params(ckpt_dir, 2))}")
    os.remove(os.path.join(mnt, "filler"))
    start = time.perf_counter()
    state = loop.train(helpers.toy_config(run, 6), toy.ToyModel(), toy.source())
    print(f"RESULT space freed: resumed to step {int(state.step)} in "
          f"{time.perf_counter() - start:.1f} s")
  finally:
    subprocess.run(["umount", mnt], check=False)
    os.rmdir(mnt)


if __name__ == "__main__":
  main(*(int(a) for a in sys.argv[1:]))
