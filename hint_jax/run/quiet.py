"""Known-harmless start-up noise of the `hint-jax` commands, filtered line by line.

On a machine without a GPU, importing TensorFlow (which the SeqIO data pipeline uses, for data
only) prints C++ log lines about CUDA (`Could not find cuda drivers`, `failed call to cuInit`),
oneDNN and CPU features straight to file descriptor 2; and orbax logs `Given directory is read
only=...` each time a checkpoint is opened for reading, which we do on purpose to restore.

`quiet_tensorflow` imports TensorFlow and hides its GPUs (JAX owns the accelerators; T5X does
the same) while fd 2 goes to a temporary file, then writes back every line that is not one of
those known messages, so real errors still show. `quiet_orbax` drops only the read-only notice.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# Lines TensorFlow's C++ logging prints while it loads and probes for CUDA on a CPU machine.
TF_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|^I\d{4} [\d:. ]+\d+ [\w.]+:\d+\] "  # INFO lines: oneDNN, cudart_stub, cpu_feature_guard
    r"|^To enable the following instructions: .* rebuild TensorFlow"  # cpu_feature_guard, cont.
    r"|^[EW]\d{4} [\d:. ]+\d+ (cuda_platform|cuda_executor|cuda_diagnostics|cuda_driver)"
    r"\.cc:\d+\] .*(cuInit|CUDA_ERROR_NO_DEVICE|kernel driver|diagnostic information|hostname"
    r"|libcuda reported version|DSO loaded)")
READ_ONLY_NOTICE = "Given directory is read only=%s"  # orbax CheckpointManager(read_only=True)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = TF_NOISE) -> Iterator[None]:
  """Sends fd 2 to a temporary file inside the block, then re-emits the lines `noise` misses."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(True)
              if not noise.search(line)]
      if kept:
        os.write(2, "".join(kept).encode("utf-8"))


def quiet_tensorflow() -> None:
  """Imports TensorFlow (if installed) with its CUDA probing filtered, and hides its GPUs."""
  if "tensorflow" in sys.modules:
    return
  with filtered_stderr():
    try:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
    except ImportError:
      return
    with contextlib.suppress(RuntimeError):  # devices already initialised: too late, harmless
      tf.config.set_visible_devices([], "GPU")


class _DropReadOnly(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return record.msg != READ_ONLY_NOTICE


def quiet_orbax() -> None:
  """Drops orbax's notice that a checkpoint directory opened for reading is read only."""
  absl_logger = logging.getLogger("absl")  # orbax logs through absl.logging
  if not any(isinstance(f, _DropReadOnly) for f in absl_logger.filters):
    absl_logger.addFilter(_DropReadOnly())
