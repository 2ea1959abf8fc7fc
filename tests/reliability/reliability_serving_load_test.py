"""Drill 7: 10,000 requests over 500 distinct instructions through one Predictor.

The TaskParams cache is bounded to 100 instructions' worth of bytes, so it evicts all the time;
its size is checked after every batch. A deterministic sample of the answers (every 25th request)
is compared with a Predictor that caches nothing (regenerating everything would double the
drill's time for no extra coverage: the cache returns the very arrays it stored).
"""
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reliability_helpers import record, tiny_hint

from hint_jax.data import vocab as vocab_lib
from hint_jax.serving import predictor as predictor_lib

N_REQUESTS, N_INSTRUCTIONS, BATCH, CACHED_INSTRUCTIONS, SAMPLE_EVERY = 10_000, 500, 32, 100, 25
BUCKETS = predictor_lib.Buckets(batch_sizes=(BATCH,), input_lengths=(16,),
                                instruction_lengths=(32,), max_decode_len=4)
WORDS = ("reverse", "copy", "sort", "count", "upper", "lower", "first", "last", "double", "skip")


def _requests() -> tuple[list[str], list[str]]:
  """Every instruction at least once, then a Zipf-like popularity (what serving sees)."""
  rng = np.random.default_rng(7)
  texts = [f"Task {k}: {WORDS[k % 10]} the {WORDS[(k // 10) % 10]} words, then "
           f"{WORDS[(k // 100) % 10]} them." for k in range(N_INSTRUCTIONS)]
  popular = rng.permutation(N_INSTRUCTIONS)
  ranks = np.minimum(rng.zipf(1.3, N_REQUESTS - N_INSTRUCTIONS) - 1, N_INSTRUCTIONS - 1)
  order = np.concatenate([rng.permutation(N_INSTRUCTIONS), popular[ranks]])
  inputs = [" ".join(rng.choice(WORDS, 3)) + f" {i % 97}" for i in range(N_REQUESTS)]
  return [texts[k] for k in order], inputs


@pytest.mark.slow
def test_ten_thousand_requests_with_a_bounded_cache():
  model, host_params = tiny_hint()
  params = jax.tree.map(jnp.asarray, host_params)
  vocab = vocab_lib.get_vocabulary()
  instructions, inputs = _requests()
  probe = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, checkpoint_id="load")
  entry_bytes = probe.adaptation(instructions[0]).num_bytes
  budget = CACHED_INSTRUCTIONS * entry_bytes
  served = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, checkpoint_id="load",
                                   cache_bytes=budget)
  served.generate(instructions[:BATCH], inputs[:BATCH])  # compile outside the timing
  served.cache.clear_memory()
  served.cache.stats = type(served.cache.stats)()
  rss_before, peak_cache = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 0
  start, answers, lookups = time.perf_counter(), [], 0
  for lo in range(0, N_REQUESTS, BATCH):
    lookups += len(set(instructions[lo:lo + BATCH]))  # one cache lookup per distinct instruction
    answers += served.generate(instructions[lo:lo + BATCH], inputs[lo:lo + BATCH])
    peak_cache = max(peak_cache, served.cache.num_bytes)
    assert served.cache.num_bytes <= budget and len(served.cache) <= CACHED_INSTRUCTIONS
  seconds = time.perf_counter() - start
  stats = served.cache.stats
  assert len(answers) == N_REQUESTS and len(set(instructions)) == N_INSTRUCTIONS
  assert stats.hits + stats.misses == lookups and stats.evictions > 0 and stats.disk_hits == 0

  uncached = predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, cache_bytes=0)
  sample = list(range(0, N_REQUESTS, SAMPLE_EVERY))
  expected, regenerated = [], 0
  for lo in range(0, len(sample), BATCH):
    rows = sample[lo:lo + BATCH]
    regenerated += len({instructions[i] for i in rows})
    expected += uncached.generate([instructions[i] for i in rows], [inputs[i] for i in rows])
  assert len(uncached.cache) == 0 and uncached.cache.stats.misses == regenerated
  assert [answers[i] for i in sample] == expected
  record("serving_load", requests=N_REQUESTS, instructions=N_INSTRUCTIONS,
         seconds=round(seconds, 2), requests_per_s=round(N_REQUESTS / seconds, 1),
         entry_bytes=entry_bytes, budget_bytes=budget, peak_cache_bytes=peak_cache,
         hits=stats.hits, misses=stats.misses, evictions=stats.evictions,
         compared_with_uncached=len(sample),
         rss_growth_mib=round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before)
                              / 1024, 1))
