"""Decoding: greedy and beam search equal Hugging Face generate; cache equals full forward."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import t5_tiny

from hint_jax.t5 import T5, decoding, greedy_decode, load_hf_t5

MAX_LEN = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A scaled (varied outputs) HF T5.1.1, our copy, 16 padded inputs and their encoding."""
  hf = t5_tiny.hf_model(t5_tiny.hf_config(), scale=4.0)
  path = tmp_path_factory.mktemp("dec")
  hf.save_pretrained(path)
  config, params = load_hf_t5(path)
  enc = t5_tiny.padded_tokens(np.random.default_rng(0), 16, 9, min_len=3)
  mask = jnp.asarray(enc > 0, jnp.int32)
  encoded = t5_tiny.jit_apply(config, "encode")({"params": params}, jnp.asarray(enc))
  return hf, config, params, enc, mask, encoded


def test_greedy_matches_hf_generate(setup):
  hf, config, params, enc, _, _ = setup
  ref = t5_tiny.hf_generate(hf, enc, MAX_LEN)
  ours = np.asarray(greedy_decode(config, params, enc, MAX_LEN))
  assert ours.shape == (16, MAX_LEN) and ours.dtype == np.int32
  np.testing.assert_array_equal(ours, ref)
  assert (ours == 1).any(axis=1).sum() >= 2, "fixture should produce EOS for several inputs"
  assert len(np.unique(ours)) > 10, "fixture should produce varied tokens"


@pytest.mark.parametrize("length_penalty,early_stopping", [(1.0, False), (2.0, "never")])
def test_beam_search_matches_hf_generate(setup, length_penalty, early_stopping):
  hf, config, params, enc, mask, encoded = setup
  ref = t5_tiny.hf_generate(hf, enc, MAX_LEN, num_beams=4, length_penalty=length_penalty,
                            early_stopping=early_stopping)
  ours = decoding.decode(T5(config), params, encoded, mask, None, max_decode_len=MAX_LEN,
                         method="beam", num_beams=4, length_penalty=length_penalty,
                         early_stopping=early_stopping)
  np.testing.assert_array_equal(np.asarray(ours), ref)


def test_sampling_with_top_k_1_is_greedy(setup):
  _, config, params, enc, mask, encoded = setup
  greedy = greedy_decode(config, params, enc, MAX_LEN)
  sampled = decoding.decode(T5(config), params, encoded, mask, max_decode_len=MAX_LEN,
                            method="sample", temperature=0.7, top_k=1, top_p=0.9,
                            rng=jax.random.PRNGKey(3))
  np.testing.assert_array_equal(np.asarray(sampled), np.asarray(greedy))


def test_filter_logits_top_k_and_top_p():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  kept_p = np.isfinite(np.asarray(decoding.filter_logits(logits, 1.0, 0, 0.75)))
  np.testing.assert_array_equal(kept_p, [[True, True, False, False]])
  kept_k = np.isfinite(np.asarray(decoding.filter_logits(logits, 2.0, 3, 1.0)))
  np.testing.assert_array_equal(kept_k, [[True, True, True, False]])


@pytest.mark.parametrize("with_task_params", [False, True])
def test_cached_decoding_equals_full_forward(setup, with_task_params):
  """Step-by-step cached logits equal the full forward (also with prefix + LoRA + adapters)."""
  _, config, params, enc, mask, _ = setup
  model = T5(config)
  batch, length = 3, 7
  task_params = (t5_tiny.random_task_params(config.dims, batch, seed=1)
                 if with_task_params else None)
  dec = jnp.asarray(np.random.default_rng(5).integers(0, t5_tiny.VOCAB, (batch, length)))

  @jax.jit
  def full_and_stepwise(tokens, mask, task_params):
    encoded = model.apply({"params": params}, tokens, task_params, method="encode")
    full = model.apply({"params": params}, encoded, mask, dec, task_params, method="decode")
    cache = decoding.init_cache(model, params, encoded, mask, task_params, length)
    step = decoding.make_step_fn(model, params, encoded, mask, task_params)
    _, steps = jax.lax.scan(lambda c, tok: step(tok, c)[::-1], cache, dec.T)
    return full, steps.transpose(1, 0, 2)

  full, stepwise = full_and_stepwise(jnp.asarray(enc[:batch]), mask[:batch], task_params)
  # Scaled weights give logits up to ~10; summation order differs between the two paths.
  np.testing.assert_allclose(stepwise, full, atol=5e-4, rtol=1e-4)


def test_decode_rejects_bad_method(setup):
  _, config, params, _, mask, encoded = setup
  with pytest.raises(ValueError, match="method"):
    decoding.decode(T5(config), params, encoded, mask, max_decode_len=3, method="nucleus")
  with pytest.raises(ValueError, match="rng"):
    decoding.decode(T5(config), params, encoded, mask, max_decode_len=3, method="sample")
