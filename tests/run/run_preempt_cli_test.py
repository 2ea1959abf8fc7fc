"""`hint-jax train` under SIGTERM: saves the step in progress, one line on how to resume, exit
143. (Resuming from that checkpoint bitwise: tests/reliability/reliability_preempt_test.py.)"""
import os
import pathlib
import signal
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS = 200


def _train(model_dir: pathlib.Path) -> subprocess.Popen:
  cmd = [sys.executable, "-m", "hint_jax", "train", "--gin_file=runs/tiny_cpu.gin",
         f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={STEPS}", "--gin.BATCH_SIZE=8",
         "--gin.train_config.TrainConfig.log_every=1", "--gin.train_config.TrainConfig.eval_every=0",
         "--gin.train_config.TrainConfig.progress_bar=False"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigterm_saves_and_prints_how_to_resume(tmp_path):
  proc = _train(tmp_path)
  try:
    for line in proc.stdout:
      if line.startswith("step 1:"):
        proc.send_signal(signal.SIGTERM)
        break
    proc.stdout.read()
    code, err = proc.wait(timeout=300), proc.stderr.read()
  finally:
    if proc.poll() is None:
      proc.kill()
  assert code == 128 + signal.SIGTERM, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith("hint-jax: stopped by SIGTERM after step "), err[-3000:]
  assert "resume" in last and str(tmp_path / "checkpoints") in last
  assert "Traceback" not in err
  saved = int(last.split("after step ")[1].split(";")[0])
  assert 1 <= saved < STEPS and sorted(os.listdir(tmp_path / "checkpoints")) == [str(saved)]
