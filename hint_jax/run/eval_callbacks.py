"""Generation (SNI ROUGE-L / exact match) and rank-classification callbacks for the trainer.

Bind them in a run file (dynamic registration, no decorators):

  from hint_jax.run import eval_callbacks
  run_train.train.eval_callbacks = [
      @eval_callbacks.sni_generation(),
      @eval_callbacks.rank_classification()]
  eval_callbacks.sni_generation:
    task_name = 'synthetic_hint'
    ...

Each is a factory `f(model, partitioner) -> callback(params, step) -> {name: value}` (the
trainer passes its own Partitioner, so the programs are traced under the run's mesh and axis
rules; without one they run on one device); the eval examples are
converted once (on the first call) and the first `max_examples` of them are evaluated. Batches
are whole host batches, so these callbacks assume a single process.
"""
import functools
from collections.abc import Callable, Mapping

import jax
import numpy as np

from hint_jax import types
from hint_jax.data import features, pipeline, sni_metrics
from hint_jax.data import rank_classification as rank_lib
from hint_jax.data import vocab as vocab_lib
from hint_jax.models import interface
from hint_jax.parallel import partitioner as partitioner_lib

Callback = Callable[[types.PyTree, int], dict[str, float]]


def _references(example: Mapping) -> list[str]:
  return list(example.get("references") or [example[features.TARGETS + "_pretokenized"]])


def sni_generation(task_name: str, split: str, feature_lengths: Mapping[str, int],
                   max_examples: int = 64,
                   max_decode_len: int = 64, batch_size: int = 16, converter: str = "hint",
                   prefix: str | None = None, vocabulary: str | None = None,
                   **decode_options) -> Callable[[interface.Model], Callback]:
  """Greedy (or `decode_options`) generation on the first `max_examples` examples of `split`.

  Returns `{"<prefix>/rougeL", "<prefix>/exact_match"}` (x100, official SNI metrics, max over
  an example's `references`, else its target); prefix defaults to `task_name`.
  """
  prefix = prefix or task_name

  def factory(model: interface.Model,
              partitioner: partitioner_lib.Partitioner | None = None) -> Callback:
    predict = (partitioner or partitioner_lib.single_device()).jit(functools.partial(
        model.predict_batch, max_decode_len=max_decode_len, **decode_options))

    @functools.cache
    def evaluation() -> pipeline.EvalSet:
      source = pipeline.load_source(task_name, split)
      examples = [ex for exs in source.examples for ex in exs][:max_examples]
      return pipeline.batch_eval_examples(examples, feature_lengths, batch_size,
                                          converter=converter)

    def callback(params: types.PyTree, step: int) -> dict[str, float]:
      del step
      ev, vocab = evaluation(), vocab_lib.get_vocabulary(vocabulary)
      predictions, references = [], []
      for batch, ids in zip(ev.batches, ev.example_ids):
        tokens = np.asarray(jax.device_get(predict(params, batch)))
        for row, i in zip(tokens, ids):
          if i >= 0:
            predictions.append(vocab.decode(row.tolist()))
            references.append(_references(ev.examples[i]))
      metrics = sni_metrics.compute_metrics(predictions, references)
      return {f"{prefix}/{k}": v for k, v in metrics.items()}

    return callback

  return factory


def rank_classification(task_name: str, feature_lengths: Mapping[str, int],
                        split: str = "test", max_examples: int = 64, batch_size: int = 32, converter: str = "hint",
                        prefix: str | None = None) -> Callable[[interface.Model], Callback]:
  """Accuracy (x100) of the highest `model.score_fn` answer choice, first `max_examples` only.

  Returns `{"<prefix>/accuracy", "<prefix>/accuracy_<dataset>", ...}` as in
  `hint_jax.data.rank_classification.accuracy`; prefix defaults to `task_name`.
  """
  prefix = prefix or task_name

  def factory(model: interface.Model,
              partitioner: partitioner_lib.Partitioner | None = None) -> Callback:
    score = (partitioner or partitioner_lib.single_device()).jit(model.score_fn)

    @functools.cache
    def evaluation() -> tuple[pipeline.EvalSet, int]:
      ev = pipeline.rank_eval_set(task_name, feature_lengths, batch_size, split=split,
                                  converter=converter)
      return ev, sum(row["example_index"] < max_examples for row in ev.examples)

    def callback(params: types.PyTree, step: int) -> dict[str, float]:
      del step
      ev, rows = evaluation()
      scores = np.concatenate([np.asarray(jax.device_get(score(params, b)))
                               for b in ev.batches[:-(-rows // batch_size)]])[:rows]
      metrics = rank_lib.accuracy(scores, ev.examples[:rows])
      return {f"{prefix}/{k}": v for k, v in metrics.items()}

    return callback

  return factory
