"""Generation and rank-classification eval callbacks on a tiny random HINT model."""
import collections

import hint_jax_tasks  # noqa: F401  (registers the tasks read by name)
import jax
import numpy as np
import pytest

from hint_jax import axes
from hint_jax.data import features as F
from hint_jax.data import pipeline
from hint_jax.models import config as model_config
from hint_jax.models import hint
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.parallel import partitioner, sharding
from hint_jax.peft import spec
from hint_jax.run import eval_callbacks
from hint_jax.t5 import config as t5_config

LENGTHS = {F.INSTRUCTION: 48, F.INPUTS: 32, F.TARGETS: 24}
RANK_LENGTHS = {F.INSTRUCTION: 48, F.INPUTS: 64, F.TARGETS: 8}


@pytest.fixture(scope="module")
def model_and_params():
  cfg = model_config.HintConfig(t5=t5_config.T5Config.preset("tiny", vocab_size=8100),
                                peft=spec.PeftConfig(adapter_size=4, prefix_length=2),
                                max_instruction_length=48)
  model = hint.HintModel(cfg)
  batch = pipeline.eval_set("synthetic_hint", "validation", LENGTHS, 2).batches[0]
  return model, hint.unbox(model.init(jax.random.PRNGKey(0), batch))


class _Oracle:
  """Decodes each example's target exactly: exact match and ROUGE-L must then be 100."""

  def predict_batch(self, params, batch, *, max_decode_len):
    del params
    return batch[F.DECODER_TARGET_TOKENS][:, :max_decode_len]


def test_sni_generation_metrics(model_and_params):
  model, params = model_and_params
  factory = eval_callbacks.sni_generation("synthetic_hint", "validation", LENGTHS,
                                          max_examples=6, max_decode_len=8, batch_size=4)
  metrics = factory(model)(params, 0)
  assert set(metrics) == {"synthetic_hint/rougeL", "synthetic_hint/exact_match"}
  assert all(0.0 <= v <= 100.0 for v in metrics.values())
  oracle = eval_callbacks.sni_generation("synthetic_hint", "validation", LENGTHS,
                                         max_examples=6, max_decode_len=24, batch_size=4,
                                         prefix="oracle")(_Oracle())(params, 0)
  assert oracle == {"oracle/rougeL": 100.0, "oracle/exact_match": 100.0}


def test_generation_under_the_trainers_partitioner_equals_one_device():
  """With the trainer's Partitioner (data 4 x model 2, params sharded by their logical axes) the
  callback decodes what the single-device default does."""
  t5 = t5_config.T5Config.preset("tiny", vocab_size=8100, num_heads=2, d_ff=16)
  model = hint.HintModel(model_config.HintConfig(
      t5=t5, peft=spec.PeftConfig(adapter_size=4, prefix_length=2), max_instruction_length=48))
  batch = pipeline.eval_set("synthetic_hint", "validation", LENGTHS, 2).batches[0]
  params = hint.unbox(model.init(jax.random.PRNGKey(1), batch))
  mesh = mesh_lib.build(mesh_lib.MeshConfig(model_parallel=2))
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(1), batch)
  shardings = hint.unbox(sharding.logical_shardings(boxed, mesh, axes.STANDARD_RULES))
  sharded = jax.device_put(params, shardings)
  assert any(len(s.device_set) == 8 and not s.is_fully_replicated
             for s in jax.tree.leaves(shardings))
  factory = eval_callbacks.sni_generation("synthetic_hint", "validation", LENGTHS,
                                          max_examples=4, max_decode_len=6, batch_size=4)
  on_mesh = factory(model, partitioner.Partitioner(mesh, axes.STANDARD_RULES))(sharded, 0)
  assert on_mesh == factory(model)(params, 0)


def test_rank_classification_matches_argmax_of_score_fn(model_and_params):
  model, params = model_and_params
  n = 7
  metrics = eval_callbacks.rank_classification(
      "p3_heldout_rank_classification", RANK_LENGTHS, max_examples=n, batch_size=4)(model)(
          params, 0)
  assert "p3_heldout_rank_classification/accuracy" in metrics
  assert all(0.0 <= v <= 100.0 for v in metrics.values())
  ev = pipeline.rank_eval_set("p3_heldout_rank_classification", RANK_LENGTHS, 4)
  rows = sum(row["example_index"] < n for row in ev.examples)
  scores = np.concatenate([np.asarray(model.score_fn(params, b))
                           for b in ev.batches[:-(-rows // 4)]])
  by_example = collections.defaultdict(list)
  for score, row in zip(scores, ev.examples):
    if row["example_index"] < n:
      by_example[row["example_index"]].append((score, row))
  hits = collections.defaultdict(list)
  for rows in by_example.values():
    best = int(np.argmax([s for s, _ in rows]))
    hits[rows[0][1]["dataset"]].append(best == rows[0][1]["label"])
  want = float(np.mean([100.0 * np.mean(h) for h in hits.values()]))
  assert metrics["p3_heldout_rank_classification/accuracy"] == pytest.approx(want)
