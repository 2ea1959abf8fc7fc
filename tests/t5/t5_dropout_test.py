"""layers.dropout: the drop rate and expectation of 16-bit draws, and the memory they save."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.layers import dropout


@pytest.mark.parametrize("shape", [(64, 512, 32), (1000, 33)])  # packed halves; odd last dim
def test_drop_rate_and_expectation(shape):
  x = jnp.ones(shape, jnp.float32)
  y = np.asarray(dropout.apply(jax.random.PRNGKey(0), x, 0.1))
  dropped = (y == 0).mean()
  assert abs(dropped - 0.1) < 4 * np.sqrt(0.1 * 0.9 / y.size)  # 4 sigma
  assert abs(y.mean() - 1.0) < 5 * np.sqrt(0.1 / 0.9 / y.size)
  np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - 6554 / 65536), rtol=1e-6)


def test_rate_zero_is_identity_and_masks_depend_on_the_key():
  x = jnp.arange(64.0).reshape(8, 8)
  assert dropout.apply(jax.random.PRNGKey(0), x, 0.0) is x
  a = dropout.apply(jax.random.PRNGKey(0), jnp.ones((256, 256)), 0.5)
  b = dropout.apply(jax.random.PRNGKey(1), jnp.ones((256, 256)), 0.5)
  assert not np.array_equal(np.asarray(a) == 0, np.asarray(b) == 0)
  again = dropout.apply(jax.random.PRNGKey(0), jnp.ones((256, 256)), 0.5)
  np.testing.assert_array_equal(a, again)


def test_fewer_temporaries_than_bernoulli():
  """What the module is for: an attention-sized dropout under remat keeps less alive."""
  shape = (4, 4, 512, 512)

  def loss(mask_fn):
    def f(x, key):
      keep, scale = mask_fn(key)
      return (jnp.where(keep, jax.nn.softmax(x, -1) * scale, 0.0) ** 2).sum()
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    key = jax.eval_shape(jax.random.PRNGKey, 0)
    compiled = jax.jit(jax.grad(jax.checkpoint(f))).lower(spec, key).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  ours = loss(lambda k: dropout.keep_mask(k, shape, 0.1))
  bernoulli = loss(lambda k: (jax.random.bernoulli(k, 0.9, shape), 1 / 0.9))
  assert ours < 0.75 * bernoulli, (ours, bernoulli)
