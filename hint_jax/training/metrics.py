"""Host-side metrics: throughput/MFU arithmetic, TensorBoard + console writing, progress bar."""
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hint_jax.data import features

TOKEN_FEATURES = (features.ENCODER_INPUT_TOKENS, features.DECODER_TARGET_TOKENS,
                  features.HYPER_ENCODER_INPUT_TOKENS)


def count_tokens(local_batch: Mapping[str, np.ndarray]) -> int:
  """Non-padding tokens this process feeds (encoder, hypernet instruction and target tokens)."""
  return int(sum(np.count_nonzero(local_batch[k]) for k in TOKEN_FEATURES if k in local_batch))


def count_examples(local_batch: Mapping[str, np.ndarray]) -> int:
  key = features.DECODER_TARGET_TOKENS
  first = local_batch[key] if key in local_batch else next(iter(local_batch.values()))
  return int(first.shape[0])


def compiled_flops(compiled: Any) -> float | None:
  """FLOPs of one call of a compiled (per-device SPMD) program from XLA's cost analysis."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001  # some backends do not implement it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  flops = (cost or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def measure_peak_flops(n: int = 1024, repeats: int = 3, dtype: Any = jnp.float32) -> float:
  """Measured FLOP/s of one device on an n x n x n matmul (best of `repeats`)."""
  device = jax.local_devices()[0]
  a = jax.device_put(jnp.ones((n, n), dtype), device)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best


class Reporter:
  """Writes scalars to TensorBoard (clu) and the console; only process 0 writes anything."""

  def __init__(self, logdir: str, total_steps: int, start_step: int, progress_bar: bool = True):
    self.is_main = jax.process_index() == 0
    self._writer = None
    self._bar = None
    if self.is_main:
      from clu import metric_writers  # pylint: disable=import-outside-toplevel  # imports TF
      try:
        self._writer = metric_writers.create_default_writer(logdir, just_logging=False,
                                                            asynchronous=True)
      except Exception as e:  # TensorFlow's errors (e.g. ResourceExhausted: disk full)
        raise OSError(f"cannot write TensorBoard events to {logdir}: "
                      f"{' '.join(str(e).split())[:300]}") from e
      if progress_bar:
        import tqdm  # pylint: disable=import-outside-toplevel
        self._bar = tqdm.tqdm(total=total_steps, initial=start_step, desc="train",
                              dynamic_ncols=True)

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    """Writes to TensorBoard and prints one console line (above the progress bar)."""
    if self._writer is None:
      return
    values = {k: float(v) for k, v in values.items()}
    self._writer.write_scalars(step, values)
    line = f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()))
    if self._bar is not None:
      self._bar.write(line)
    else:
      print(line, flush=True)

  def text(self, step: int, values: Mapping[str, str]) -> None:
    if self._writer is not None:
      self._writer.write_texts(step, dict(values))

  def advance(self, steps: int, postfix: Mapping[str, float] | None = None) -> None:
    if self._bar is not None:
      if postfix:
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
      self._bar.update(steps)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
    if self._writer is not None:
      self._writer.flush()
      self._writer.close()
