"""Tests for the serving Predictor: caching, mixed-task batches, buckets, input validation."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hint_jax.data import features as F
from hint_jax.hypernet import config as hypernet_config
from hint_jax.parallel import partitioner
from hint_jax.peft import spec
from hint_jax.serving import batching
from hint_jax.serving import predictor as predictor_lib

BUCKETS = predictor_lib.Buckets(batch_sizes=(4,), input_lengths=(16,),
                                instruction_lengths=(16, 32), max_decode_len=6)
SHORT, LONG = "Say yes.", ("Rewrite the sentence in reverse word order, keeping punctuation and "
                           "capital letters exactly where they were in the original text.")
INPUTS = ["a b c", "hello there", "the cat sat", "x"]


@pytest.fixture(scope="module")
def hint_model(make_model):
  return make_model(spec.PeftConfig(adapter_size=4, prefix_length=2),
                    hypernet_config.HypernetConfig(), True)


@pytest.fixture(scope="module")
def predictor(hint_model):
  model, params, vocab = hint_model
  return predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, checkpoint_id="test")


def test_cache_hit_equals_fresh_generation(hint_model, predictor):
  first = predictor.generate([SHORT, LONG], INPUTS[:2])
  misses = predictor.cache.stats.misses
  again = predictor.generate([SHORT, LONG], INPUTS[:2])
  assert predictor.cache.stats.misses == misses and predictor.cache.stats.hits >= 2
  model, params, vocab = hint_model
  fresh = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, cache_bytes=0)
  assert first == again == fresh.generate([SHORT, LONG], INPUTS[:2])
  assert len(fresh.cache) == 0
  cached = predictor.adapt(SHORT)
  regenerated = fresh.adapt(SHORT)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
               cached, regenerated)


def test_mixed_task_batch_equals_per_task_batches(predictor):
  instructions = [SHORT, LONG, "", LONG]
  mixed = predictor.generate(instructions, INPUTS)
  for instr in set(instructions):
    rows = [i for i, x in enumerate(instructions) if x == instr]
    alone = predictor.generate([instr] * len(rows), [INPUTS[i] for i in rows])
    assert alone == [mixed[i] for i in rows]
  swapped = predictor.generate([LONG, SHORT, "", SHORT], INPUTS)
  assert swapped[:2] != mixed[:2]  # the instruction matters, so a wrong index would show


def test_mixed_task_logits_match_per_task(hint_model, predictor):
  model, params, _ = hint_model
  apply = jax.jit(model.apply)
  tokens = predictor._inputs([SHORT, LONG], INPUTS[:2], 4)
  dec = jnp.ones((4, 3), jnp.int32)
  table = predictor._table([predictor.adaptation(SHORT), predictor.adaptation(LONG)], 4)
  mixed = apply(params, table, tokens, dec, jnp.array([0, 1, 0, 0]))
  for row, instr in enumerate([SHORT, LONG]):
    alone = apply(params, predictor._table([predictor.adaptation(instr)], 4), tokens, dec,
                        jnp.zeros((4,), jnp.int32))
    np.testing.assert_allclose(mixed[row], alone[row], rtol=1e-5, atol=1e-5)


def test_buckets_avoid_recompiling(predictor):
  predictor.generate([SHORT] * 3, INPUTS[:3])
  compiled = predictor._generate._cache_size()
  predictor.generate([SHORT], ["one"])
  predictor.generate([SHORT, SHORT], ["two words", "three words here"])
  assert predictor._generate._cache_size() == compiled


def test_lru_byte_budget(hint_model):
  model, params, vocab = hint_model
  one = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, checkpoint_id="b")
  size = one.adaptation("Task 0.").num_bytes
  small = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, checkpoint_id="b",
                                  cache_bytes=2 * size + size // 2)
  for i in range(5):
    small.adapt(f"Task {i}.")
    assert small.cache.num_bytes <= small.cache.max_bytes
  assert len(small.cache) == 2 and small.cache.stats.evictions == 3


def test_disk_cache_shared_between_predictors(hint_model, tmp_path):
  model, params, vocab = hint_model
  kw = {"buckets": BUCKETS, "checkpoint_id": "disk", "cache_dir": str(tmp_path)}
  first = predictor_lib.Predictor(model, params, vocab, **kw).generate([SHORT], ["a b"])
  second = predictor_lib.Predictor(model, params, vocab, **kw)
  assert second.generate([SHORT], ["a b"]) == first
  assert second.cache.stats.disk_hits == 1 and second.cache.stats.misses == 0


def test_beam_and_sampling(predictor):
  beam = predictor.generate([SHORT], ["a b"], method="beam", num_beams=2)
  sample = predictor.generate([SHORT], ["a b"], method="sample", temperature=0.8, seed=1)
  assert len(beam) == len(sample) == 1
  assert sample == predictor.generate([SHORT], ["a b"], method="sample", temperature=0.8, seed=1)


@pytest.mark.parametrize("instructions,inputs,match", [
    (["a", 3], ["x", "y"], r"instructions\[1\] must be a string"),
    (["a"], ["x", "y"], "1 instructions but 2 inputs"),
    ("a", ["x"], "instructions must be a list"),
    (["a"], [None], r"inputs\[0\] must be a string"),
])
def test_bad_input_is_one_line_value_error(predictor, instructions, inputs, match):
  with pytest.raises(ValueError, match=match) as info:
    predictor.generate(instructions, inputs)
  assert "\n" not in str(info.value)


def test_unknown_option_rejected(predictor):
  with pytest.raises(ValueError, match="beams"):
    predictor.generate([SHORT], ["x"], beams=3)


def test_concat_baseline_uses_template(make_model):
  model, params, vocab = make_model(spec.PeftConfig(None, None, None), None, False)
  pred = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS)
  out = pred.generate([SHORT, LONG], ["a b", "a b"])
  assert len(out) == 2 and out[0] != out[1]
  with pytest.raises(ValueError, match="no instruction input"):
    pred.adapt(SHORT)


def _reference_batch(vocab, instructions, inputs, targets, lengths):
  """The model's own batch: one task-table row per distinct instruction, padded to `lengths`."""
  table = list(dict.fromkeys(instructions))
  pad = lambda texts, n: batching.pad(batching.tokenize(vocab, texts, n), n, len(inputs))
  tgt = pad(targets, lengths[2])
  return {F.HYPER_ENCODER_INPUT_TOKENS: pad(table, lengths[0]),
          F.TASK_INDEX: np.asarray([table.index(i) for i in instructions], np.int32),
          F.ENCODER_INPUT_TOKENS: pad(inputs, lengths[1]), F.DECODER_TARGET_TOKENS: tgt,
          F.DECODER_INPUT_TOKENS: batching.shift_right(tgt),
          F.DECODER_LOSS_WEIGHTS: (tgt > 0).astype(np.float32)}


@pytest.mark.parametrize("max_target_len", [8, 128])
def test_score_matches_model_score_fn(hint_model, predictor, max_target_len):
  """Predictor scores equal the model's own score of targets padded to `max_target_len`
  positions (the Predictor pads each batch only to a small bucket; the causal decoder makes
  that exact)."""
  model, params, vocab = hint_model
  targets = ["yes", "no no", "maybe", "x"]
  instructions = [SHORT, LONG, SHORT, ""]
  ours = predictor.score(instructions, INPUTS, targets, max_target_len=max_target_len)
  batch = _reference_batch(vocab, instructions, INPUTS, targets, (32, 16, max_target_len))
  assert batch["decoder_target_tokens"].shape[1] == max_target_len
  reference = np.asarray(jax.jit(model.score_fn)(params, batch))
  np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
  assert len(set(np.round(ours, 3))) == 4


def test_cached_memory_equals_reprojecting_the_instruction(hint_model, predictor):
  """Default entries hold H_I's cross-attention keys/values; the results equal entries of H_I."""
  model, params, vocab = hint_model
  plain = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, cache_memory=False)
  instructions = [SHORT, LONG, "", LONG]
  assert predictor.generate(instructions, INPUTS) == plain.generate(instructions, INPUTS)
  np.testing.assert_allclose(predictor.score(instructions, INPUTS, INPUTS),
                             plain.score(instructions, INPUTS, INPUTS), rtol=1e-5, atol=1e-5)
  cached, uncached = predictor.adaptation(LONG), plain.adaptation(LONG)
  assert cached.hidden is None and cached.memory is not None
  assert uncached.hidden is not None and uncached.memory is None
  t5 = model.config.t5
  assert cached.memory.key.shape == (1, t5.num_decoder_layers, cached.mask.shape[1],
                                     t5.num_heads, t5.head_dim)
  assert cached.num_bytes > uncached.num_bytes


def test_one_task_batch_uses_shared_memory_rows(hint_model, predictor):
  """A batch of one task has a 1-row table, so decoding takes the shared-memory path."""
  model, params, vocab = hint_model
  plain = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, cache_memory=False)
  encoding, _, index = predictor._features([LONG] * 4, INPUTS)
  assert encoding.memory.key.shape[0] == 1 and int(index.max()) == 0
  assert predictor.generate([LONG] * 4, INPUTS) == plain.generate([LONG] * 4, INPUTS)
  beams = {"method": "beam", "num_beams": 2}
  assert (predictor.generate([LONG] * 4, INPUTS, **beams)
          == plain.generate([LONG] * 4, INPUTS, **beams))



def test_programs_are_traced_under_the_partitioners_rules(predictor):
  """The serving programs carry the model's activation constraints, as the trainer's do;
  `nn.with_logical_constraint` drops them from a program traced without a rules context."""
  tokens = jax.ShapeDtypeStruct((1, 16), jnp.int32)
  served = predictor._encode_task.lower(predictor.params, tokens, cache_memory=False)  # pylint: disable=protected-access
  plain = jax.jit(predictor.model.encode_task).lower(predictor.params, tokens)
  assert partitioner.count_sharding_constraints(plain.as_text()) == 0
  assert partitioner.count_sharding_constraints(served.as_text()) > 0
  assert predictor.partitioner.mesh.shape == {"data": 1, "model": 1}


def test_concat_model_uses_its_recorded_template_unless_overridden(hint_model):
  """A concatenation model's input text comes from its config (what the checkpoint records)."""
  model, params, vocab = hint_model
  concat = dataclasses.replace(model.config, peft=spec.PeftConfig(None, None), hypernet=None,
                               fusion=False, concat_template="{instruction} | {input}")
  concat_model = type(model)(concat)
  assert concat.input_contract() == {
      "converter": "concat", "concat_template": "{instruction} | {input}",
      "features": ["encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens"]}
  own = predictor_lib.Predictor(concat_model, params, vocab, buckets=BUCKETS)
  assert own.concat_template == "{instruction} | {input}"
  explicit = predictor_lib.Predictor(concat_model, params, vocab, buckets=BUCKETS,
                                     concat_template="{input}")
  assert explicit.concat_template == "{input}"
  assert model.config.input_contract()["concat_template"] is None
