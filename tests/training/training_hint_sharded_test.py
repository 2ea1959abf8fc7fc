"""The real HINT model through the trainer: a data 4 x model 2 step (one instruction table per
data shard x microbatch) equals the one-device step."""
import jax
import numpy as np
import pytest
from flax import traverse_util

from hint_jax.data import features as F
from hint_jax.hypernet import config as hypernet_config
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.peft import spec
from hint_jax.t5 import config as t5_config
from hint_jax.training import config as config_lib
from hint_jax.training import loop, optim

T5 = t5_config.T5Config(vocab_size=64, d_model=16, num_heads=2, head_dim=6, d_ff=24,
                        num_encoder_layers=2, num_decoder_layers=2,
                        relative_attention_num_buckets=8, relative_attention_max_distance=16)
# No hypernetwork dropout: per-shard instruction tables draw different masks than one device's.
HINT = model_config.HintConfig(t5=T5, peft=spec.PeftConfig(adapter_size=4, prefix_length=2),
                               hypernet=hypernet_config.HypernetConfig(pooling_dropout=0.0,
                                                                      generator_dropout=0.0),
                               max_instruction_length=8)


def _batch(step: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(step)
  tok = lambda *s: rng.integers(2, T5.vocab_size, s).astype(np.int32)
  targets = tok(8, 5)
  return {F.HYPER_ENCODER_INPUT_TOKENS: tok(4, 8), F.TASK_INDEX: rng.integers(0, 4, 8).astype(
      np.int32), F.ENCODER_INPUT_TOKENS: tok(8, 7), F.DECODER_TARGET_TOKENS: targets,
          F.DECODER_INPUT_TOKENS: np.pad(targets[:, :-1], ((0, 0), (1, 0))),
          F.DECODER_LOSS_WEIGHTS: np.ones_like(targets)}


def _two_steps(tmp_path, devices, model_parallel):
  cfg = config_lib.TrainConfig(
      model_dir=str(tmp_path), train_steps=2, num_microbatches=2,
      optim=optim.OptimConfig(name="adafactor", learning_rate=1e-2, min_dim_size_to_factor=8),
      mesh=mesh_lib.MeshConfig(model_parallel=model_parallel))
  model = hint.HintModel(HINT)
  setup = loop.build_setup(cfg, model, _batch(0), mesh_lib.build(cfg.mesh, devices))
  state = loop._fresh_state(cfg, model, setup, _batch(0), None)
  step_fn = loop.compile_step(cfg, model, setup)
  for s in range(2):
    state, metrics = step_fn(state, setup.to_global(_batch(s)))
  return state, jax.device_get(metrics)


@pytest.mark.slow
def test_hint_sharded_step_equals_single_device(tmp_path):
  sharded, m_sharded = _two_steps(tmp_path, jax.devices(), 2)
  single, m_single = _two_steps(tmp_path, jax.devices()[:1], 1)
  assert bool(m_sharded["finite"]) and abs(m_sharded["loss"] - m_single["loss"]) < 1e-5
  split = [k for k, v in traverse_util.flatten_dict(sharded.trainable, sep="/").items()
           if "model" in v.sharding.spec]
  assert any(k.startswith("backbone/") for k in split) and any(
      k.startswith("hypernet/") for k in split)
  a = traverse_util.flatten_dict(jax.device_get(sharded.params()), sep="/")
  b = traverse_util.flatten_dict(jax.device_get(single.params()), sep="/")
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=0, err_msg=k)
