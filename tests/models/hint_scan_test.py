"""`T5Config.scan_layers`: the scanned stacks compute exactly what the unrolled ones do (HINT
with every generated-module kind, losses, gradients, remat, decoding), and the layouts convert."""
import dataclasses

import chex
import flax.linen as nn
import hint_tiny
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax import axes
from hint_jax.t5 import model as t5_model

HINT = hint_tiny.HINT
SCANNED = hint_tiny.variant(t5=dataclasses.replace(HINT.t5, scan_layers=True))


@pytest.fixture(scope="module")
def unrolled():
  return hint_tiny.model_and_params(HINT)


def test_scanned_layout_round_trips_and_matches_the_scanned_init(unrolled):
  _, params = unrolled
  stacked = t5_model.scanned(params)
  enc = stacked["backbone"]["encoder"]
  assert "layers_0" not in enc and enc["layers"]["attention"]["query"]["kernel"].shape[0] == 2
  assert stacked["backbone"]["decoder"]["layers"]["mlp"]["wo"]["kernel"].shape[0] == 3
  chex.assert_trees_all_equal(t5_model.unscanned(stacked), params)
  boxed = jax.eval_shape(hint_tiny.model(SCANNED).init_backbone, jax.random.PRNGKey(0),
                         hint_tiny.batch())
  chex.assert_trees_all_equal_shapes_and_dtypes(nn.unbox(boxed), stacked["backbone"])
  # The stacked axis is named, so mesh rules shard (here: replicate) it like any other.
  kernel = boxed["encoder"]["layers"]["attention"]["query"]["kernel"]
  assert kernel.names == (axes.LAYERS, axes.EMBED, axes.HEADS, axes.KV)


def test_scanned_stacks_equal_the_unrolled_ones(unrolled):
  _, params = unrolled
  b = hint_tiny.batch(seed=5)
  want = hint_tiny.forward(HINT, params, b)
  got = hint_tiny.forward(SCANNED, t5_model.scanned(params), b)
  chex.assert_trees_all_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("policy", ["none", "full"])
def test_scanned_loss_and_gradients_equal_the_unrolled_ones(unrolled, policy):
  _, params = unrolled
  b = hint_tiny.batch(seed=3)

  def value_and_grad(cfg, p):
    return jax.jit(jax.value_and_grad(lambda q: hint_tiny.model(cfg).loss_fn(q, b, None)[0]))(p)

  want_loss, want_grads = value_and_grad(HINT, params)
  cfg = hint_tiny.variant(t5=dataclasses.replace(SCANNED.t5, remat_policy=policy))
  got_loss, got_grads = value_and_grad(cfg, t5_model.scanned(params))
  np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
  chex.assert_trees_all_close(t5_model.unscanned(got_grads), want_grads, atol=1e-6, rtol=1e-4)


def test_scanned_remat_keeps_the_dropout_masks(unrolled):
  """Dropout under scan draws per-layer rngs; remat must recompute the very same masks."""
  _, params = unrolled
  params = t5_model.scanned(params)
  b, rng = hint_tiny.batch(seed=4), jax.random.PRNGKey(11)
  t5 = dataclasses.replace(SCANNED.t5, dropout_rate=0.2)

  def value_and_grad(policy):
    cfg = hint_tiny.variant(t5=dataclasses.replace(t5, remat_policy=policy))
    return jax.jit(jax.value_and_grad(lambda q: hint_tiny.model(cfg).loss_fn(q, b, rng)[0]))(
        params)

  want = value_and_grad("none")
  chex.assert_trees_all_close(value_and_grad("full"), want, atol=1e-6, rtol=1e-5)
  off = jax.jit(lambda q: hint_tiny.model(SCANNED).loss_fn(q, b, None)[0])(params)
  assert abs(float(want[0]) - float(off)) > 1e-4  # dropout is on


def test_scanned_model_decodes_like_the_unrolled_one(unrolled):
  _, params = unrolled
  b = hint_tiny.batch(seed=6)

  def decode(cfg, p):
    return hint_tiny.model(cfg).predict_batch(p, b, max_decode_len=4)

  want = decode(HINT, params)
  np.testing.assert_array_equal(decode(SCANNED, t5_model.scanned(params)), want)


def test_step_decoding_a_scanned_decoder_directly_is_an_error(unrolled):
  _, params = unrolled
  t5 = t5_model.T5(SCANNED.t5)
  enc = jnp.zeros((1, 3, SCANNED.t5.d_model))
  with pytest.raises(ValueError, match="unrolled layer layout"):
    t5.apply({"params": t5_model.scanned(params)["backbone"]}, enc, jnp.ones((1, 3), jnp.int32),
             jnp.zeros((1, 2), jnp.int32), decode=True, mutable=["cache"], method="decode")


def test_hf_weights_and_unrolled_checkpoints_initialise_a_scanned_model(unrolled, tmp_path):
  """Partial restore converts between the layouts (a Hugging Face T5 is unrolled), and a
  scanned backbone exports the same Hugging Face files as the unrolled one."""
  from flax import traverse_util  # pylint: disable=import-outside-toplevel

  from hint_jax.t5 import hf  # pylint: disable=import-outside-toplevel
  from hint_jax.training import partial_restore  # pylint: disable=import-outside-toplevel
  _, params = unrolled
  stacked = t5_model.scanned(params)
  source = traverse_util.flatten_dict(params, sep="/")
  target = jax.tree.map(jnp.zeros_like, stacked)
  got, chosen = partial_restore.restore_matching(target, source, ("backbone/.*",))
  chex.assert_trees_all_equal(got["backbone"], stacked["backbone"])
  assert "backbone/encoder/layers/mlp/wo/kernel" in chosen
  back, _ = partial_restore.restore_matching(jax.tree.map(jnp.zeros_like, params),
                                             traverse_util.flatten_dict(stacked, sep="/"),
                                             ("backbone/.*",))
  chex.assert_trees_all_equal(back["backbone"], params["backbone"])
  hf.save_hf_t5(HINT.t5, params["backbone"], tmp_path / "unrolled")
  hf.save_hf_t5(SCANNED.t5, stacked["backbone"], tmp_path / "scanned")
  want, got_hf = (hf.read_weights(tmp_path / d) for d in ("unrolled", "scanned"))
  assert want.keys() == got_hf.keys()
  for k, v in want.items():
    np.testing.assert_array_equal(got_hf[k], v)
