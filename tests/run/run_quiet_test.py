"""CPU runs of `hint-jax` print no CUDA probing noise and no orbax read-only notice."""
import os
import pathlib
import subprocess
import sys

import pytest

from hint_jax.run import quiet

REPO = pathlib.Path(__file__).resolve().parents[2]
NOISE = ("cuInit", "cuda", "CUDA", "read only", "absl::InitializeLog", "oneDNN")


def test_filtered_stderr_drops_known_noise_and_keeps_the_rest(capfd):
  with quiet.filtered_stderr():
    for line in (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        ("I0000 00:00:1796685610.483612    5737 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used."),
        ("E0000 00:00:1796685614.645376    5737 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"),
        "E0000 00:00:1796685614.645376    5737 some_kernel.cc:12] a real error",
        "Traceback (most recent call last):"):
      os.write(2, (line + "\n").encode())
    print("python stderr", file=sys.stderr)
  err = capfd.readouterr().err
  assert sorted(err.splitlines()) == [
      "E0000 00:00:1796685614.645376    5737 some_kernel.cc:12] a real error",
      "Traceback (most recent call last):", "python stderr"]


def _hint_jax(*argv: str) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "JAX_PLATFORMS")}
  proc = subprocess.run([sys.executable, "-m", "hint_jax", *argv], check=False,
                        capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


@pytest.mark.slow
def test_train_then_eval_on_cpu_print_no_cuda_or_read_only_noise(tmp_path):
  model_dir = f"--gin.MODEL_DIR='{tmp_path}'"
  train = _hint_jax("train", "--gin_file=runs/tiny_cpu.gin", model_dir, "--gin.TRAIN_STEPS=1",
                    "--gin.optim.OptimConfig.warmup_steps=0")
  evaluate = _hint_jax("eval", "--gin_file=runs/tiny_cpu_eval.gin", model_dir,
                       "--max_examples=2")  # restores the step-1 checkpoint
  assert '"step": 1' in evaluate.stdout
  for proc in (train, evaluate):
    noisy = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, noisy
