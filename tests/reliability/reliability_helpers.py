"""Shared pieces of the reliability drills: the toy trainer run, tiny HINT, figures."""
import json
import os
import pathlib
import sys

TRAINING_TESTS = pathlib.Path(__file__).resolve().parents[1] / "training"
if str(TRAINING_TESTS) not in sys.path:  # the toy Model and its batches live with the loop tests
  sys.path.insert(0, str(TRAINING_TESTS))

FIGURES = os.environ.get("HINT_RELIABILITY_FIGURES")  # set to a .jsonl path to collect figures


def record(drill: str, **figures) -> None:
  """Prints a drill's measured figures (and appends them to $HINT_RELIABILITY_FIGURES)."""
  line = json.dumps({"drill": drill, **figures}, sort_keys=True)
  print(f"FIGURES {line}")
  if FIGURES:
    with open(FIGURES, "a", encoding="utf-8") as f:
      f.write(line + "\n")


def toy_config(model_dir, steps: int, period: int = 2, keep: int | None = 3, **kw):
  """The toy run of every trainer drill (tests/training/training_toy_model.py)."""
  from hint_jax.training import checkpoint, optim  # pylint: disable=import-outside-toplevel
  from hint_jax.training import config as config_lib  # pylint: disable=import-outside-toplevel
  return config_lib.TrainConfig(
      model_dir=str(model_dir), train_steps=steps,
      optim=optim.OptimConfig(learning_rate=1e-2, schedule="rsqrt", warmup_steps=2),
      checkpoint=checkpoint.CheckpointConfig(period=period, keep=keep,
                                             async_save=kw.pop("async_save", True)),
      log_every=2, peak_flops=1e9, progress_bar=False, signature="toy", **kw)


def flat_params(state) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  tree = jax.device_get(state.params() if hasattr(state, "params") else state)
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def assert_bitwise_equal(a: dict, b: dict) -> None:
  import numpy as np  # pylint: disable=import-outside-toplevel
  assert a.keys() == b.keys()
  for k, v in a.items():
    np.testing.assert_array_equal(v, b[k], err_msg=k)


def tiny_hint(adapter_size: int = 4, seed: int = 0):
  """(HintModel, host params) of a tiny HINT model with random weights (no compiled init)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from hint_jax.data import features  # pylint: disable=import-outside-toplevel
  from hint_jax.data import vocab as vocab_lib  # pylint: disable=import-outside-toplevel
  from hint_jax.hypernet import config as hypernet_config  # pylint: disable=import-outside-toplevel
  from hint_jax.models import config as model_config  # pylint: disable=import-outside-toplevel
  from hint_jax.models import hint  # pylint: disable=import-outside-toplevel
  from hint_jax.peft import spec  # pylint: disable=import-outside-toplevel
  from hint_jax.t5 import config as t5_config  # pylint: disable=import-outside-toplevel
  vocab = vocab_lib.get_vocabulary()
  cfg = model_config.HintConfig(
      t5=t5_config.T5Config.preset("tiny", vocab_size=vocab.vocab_size),
      peft=spec.PeftConfig(adapter_size=adapter_size, prefix_length=2),
      hypernet=hypernet_config.HypernetConfig(), fusion=True, max_instruction_length=32)
  model = hint.HintModel(cfg)
  batch = {features.ENCODER_INPUT_TOKENS: jnp.ones((1, 8), jnp.int32),
           features.DECODER_INPUT_TOKENS: jnp.ones((1, 4), jnp.int32)}
  shapes = hint.unbox(jax.eval_shape(model.init, jax.random.key(seed), batch))
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda s: rng.normal(0.0, 0.3, s.shape).astype(s.dtype), shapes)
  return model, params
