"""Drill 4: a diverging run (learning rate 1e30 injected through a gin binding) meets a non-finite
loss at step 3. `hint-jax train` stops with one line naming the last good checkpoint (step 2);
resumed with `skip_nonfinite`, it skips and counts the bad step instead.
"""
import re
import time

import pytest
from reliability_helpers import record

from hint_jax.run import main
from hint_jax.training import checkpoint


def _argv(model_dir, *extra):
  # warmup_steps=1: step 1 has learning rate 0, step 2 takes the 1e30 step, step 3 overflows.
  return ["train", "--gin_file=runs/tiny_cpu.gin", f"--gin.MODEL_DIR='{model_dir}'",
          "--gin.TRAIN_STEPS=3", "--gin.BATCH_SIZE=8", "--gin.checkpoint.CheckpointConfig.period=1",
          "--gin.optim.OptimConfig.learning_rate=1e30", "--gin.optim.OptimConfig.warmup_steps=1",
          "--gin.run_train.train.eval_data=None", "--gin.train_config.TrainConfig.peak_flops=1e9",
          "--gin.train_config.TrainConfig.progress_bar=False", *extra]


@pytest.mark.slow
def test_nan_stops_keeping_the_last_good_checkpoint_then_skip_and_count(tmp_path, capsys):
  start = time.perf_counter()
  assert main.main(_argv(tmp_path)) == 1
  seconds = time.perf_counter() - start
  captured = capsys.readouterr()
  lines = [line for line in captured.err.splitlines() if line.startswith("hint-jax")]
  assert len(lines) == 1 and "Traceback" not in captured.err, captured.err[-3000:]
  assert re.search(r"NonFiniteLossError: non-finite loss \((nan|inf)\).* at step 3;.*Last good "
                   r"checkpoint: step 2 in .*checkpoints", lines[0]), lines[0]
  ckpt_dir = tmp_path / "checkpoints"
  assert checkpoint.latest_step(ckpt_dir) == 2 and checkpoint.load_params(ckpt_dir, 2)
  assert sorted(p.name for p in ckpt_dir.iterdir() if p.name.isdigit()) == ["1", "2"]

  assert main.main(_argv(tmp_path, "--gin.train_config.TrainConfig.skip_nonfinite=True")) == 0
  out = capsys.readouterr().out
  final = [line for line in out.splitlines() if line.startswith("step 3: train/")]
  assert "hint-jax: done: 3" in out and final and "train/skipped=1" in final[0], out[-3000:]
  assert checkpoint.latest_step(ckpt_dir) == 3
  record("nonfinite", stopped_at_step=3, last_good_checkpoint=2, stop_run_s=round(seconds, 1),
         resumed_with_skip_nonfinite_skipped=1)
