"""Fixtures for serving tests: tiny HINT models with random params (no compiled init)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.data import features
from hint_jax.data import vocab as vocab_lib
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.t5 import config as t5_config


def random_params(model: hint.HintModel, seed: int = 0, scale: float = 0.3):
  """Params with `init`'s tree and shapes, drawn on the host (skips compiling `init`)."""
  batch = {features.ENCODER_INPUT_TOKENS: jnp.ones((1, 8), jnp.int32),
           features.DECODER_INPUT_TOKENS: jnp.ones((1, 4), jnp.int32)}
  shapes = hint.unbox(jax.eval_shape(model.init, jax.random.key(seed), batch))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, scale, s.shape).astype(s.dtype)),
                      shapes)


@pytest.fixture(scope="session")
def make_model():
  """`make_model(peft, hypernet, fusion, **t5_overrides) -> (model, params, vocab)`."""
  def make(peft, hypernet, fusion, seed=0, max_instruction_length=32, **t5_overrides):
    vocab = vocab_lib.get_vocabulary()
    t5 = t5_config.T5Config.preset("tiny", vocab_size=vocab.vocab_size, **t5_overrides)
    cfg = model_config.HintConfig(t5=t5, peft=peft, hypernet=hypernet, fusion=fusion,
                                  max_instruction_length=max_instruction_length)
    model = hint.HintModel(cfg)
    return model, random_params(model, seed), vocab
  return make
