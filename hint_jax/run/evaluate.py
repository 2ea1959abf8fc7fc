"""`hint-jax eval` and `hint-jax infer`: restore a trained model, score or decode an eval set.

`eval` reports what the paper reports, chosen by the task: a rank-classification task (P3
held-out, examples with `answer_choices`) gets accuracy per dataset and their average; any other
task gets the official SNI metrics (ROUGE-L and exact match, overall, per category and per task,
optionally with the instruction-reliance controls) plus loss and token accuracy. Both write
`MODEL_DIR/eval/<name>_<split>_<step>.{json,md}`.
"""
import collections
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from hint_jax.data import features, pipeline
from hint_jax.data import rank_classification as rank_lib
from hint_jax.data import vocab as vocab_lib
from hint_jax.evaluation import reliance, sni_report
from hint_jax.models import config as model_config
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.parallel import partitioner, sharding
from hint_jax.run import assemble
from hint_jax.training import batches as batches_lib
from hint_jax.training import evaluate as evaluate_lib


def limit_per_task(examples: Sequence[Mapping], max_examples: int | None) -> list:
  """The first `max_examples` examples of each task (all when None), in their order."""
  if not max_examples:
    return list(examples)
  seen, out = collections.Counter(), []
  for ex in examples:
    task = ex.get("task", "")
    if seen[task] < max_examples:
      seen[task] += 1
      out.append(ex)
  return out


def _eval_set(data: assemble.DataConfig, examples: list, shard) -> pipeline.EvalSet:
  if not examples:
    raise ValueError(f"{data.mixture_or_task_name!r} has no examples in split {data.split!r}")
  return pipeline.batch_eval_examples(examples, data.task_feature_lengths, data.batch_size,
                                      shard.index, shard.count, data.converter,
                                      data.num_task_rows)


def _examples(model: model_config.HintConfig, data: assemble.DataConfig,
              max_examples: int | None) -> tuple[list, bool]:
  """(examples or rank rows, is rank classification) of the data's task and split."""
  assemble.check_vocabulary(model, data.mixture_or_task_name)
  assemble.check_instruction_vocab(model, data)
  source = assemble.load_source(data)
  examples = limit_per_task([ex for exs in source.examples for ex in exs], max_examples)
  if not examples or "answer_choices" not in examples[0]:
    return examples, False
  task = pipeline.registry().get_mixture_or_task(data.mixture_or_task_name)
  return rank_lib.expand_choices(examples, task.output_features[features.TARGETS].vocabulary
                                 .encode), True


class _Runner:
  """Restored model, mesh and params; runs a function over every global batch of a set."""

  def __init__(self, model: model_config.HintConfig, mesh_cfg: mesh_lib.MeshConfig,
               model_dir: str, example: Mapping[str, np.ndarray], step: int | None,
               progress: bool):
    self.model = assemble.build_model(model)
    self.mesh, self.rules, self.progress = mesh_lib.build(mesh_cfg), mesh_cfg.rules, progress
    self.partitioner = partitioner.Partitioner(self.mesh, self.rules)
    self.params, self.step = evaluate_lib.restore_params(self.model, self.mesh, self.rules,
                                                         example, model_dir, step)
    self._jitted: dict[Any, Callable] = {}

  def outputs(self, key: Any, fn: Callable, ev: pipeline.EvalSet, desc: str
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(outputs, example ids) of every global batch: `fn(params, batch)`, replicated, so every
    process holds all rows; padding rows are dropped. `fn` is compiled once per `key`."""
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    if key not in self._jitted:
      self._jitted[key] = self.partitioner.jit(fn, out_shardings=sharding.replicated(self.mesh))
    jitted = self._jitted[key]
    with tqdm(total=len(ev.examples), desc=desc, unit="ex", file=sys.stderr, leave=False,
              disable=not self.progress or jax.process_index() != 0) as bar:
      for k, local in enumerate(ev.batches):
        batch = batches_lib.to_global(local, batches_lib.feature_shardings(
            local, self.mesh, self.rules))
        out = np.asarray(jax.device_get(jitted(self.params, batch)))
        ids = k * out.shape[0] + np.arange(out.shape[0])
        keep = ids < len(ev.examples)
        bar.update(int(keep.sum()))
        yield out[keep], ids[keep]

  def predictions(self, ev: pipeline.EvalSet, max_decode_len: int,
                  decode_options: Mapping[str, Any], vocabulary: str | None,
                  desc: str = "decode") -> list[str]:
    vocab, preds = vocab_lib.get_vocabulary(vocabulary), [""] * len(ev.examples)
    fn = lambda p, b: self.model.predict_batch(p, b, max_decode_len=max_decode_len,
                                               **dict(decode_options))
    key = ("decode", max_decode_len, tuple(sorted(dict(decode_options).items())))
    for tokens_BT, ids in self.outputs(key, fn, ev, desc):
      for tokens, i in zip(tokens_BT, ids):
        preds[i] = vocab.decode(np.asarray(tokens).tolist())
    return preds

  def scores(self, ev: pipeline.EvalSet) -> np.ndarray:
    scores = np.zeros(len(ev.examples), np.float64)
    for out, ids in self.outputs("score", self.model.score_fn, ev, "score choices"):
      scores[ids] = out
    return scores

  def loss(self, ev: pipeline.EvalSet) -> dict[str, float]:
    eval_step = self.partitioner.jit(evaluate_lib.step_lib.make_eval_step(self.model))
    return evaluate_lib.loss_metrics(eval_step, self.params, ev.batches, self.mesh, self.rules)


def _references(example: Mapping) -> tuple[str, ...]:
  return tuple(example.get("references") or [example[features.TARGETS + "_pretokenized"]])


def _sni_report(examples: Sequence[Mapping], predictions: Sequence[str]) -> dict:
  return sni_report.build_report([
      sni_report.ScoredExample(task=ex.get("task", ""), prediction=p,
                               references=_references(ex), category=ex.get("category", ""),
                               id=str(ex.get("id", ""))) for ex, p in zip(examples, predictions)])


def _with_instructions(examples: Sequence[Mapping], instructions: Mapping[str, str]) -> list:
  """The examples with each task's instruction replaced (texts and their tokens)."""
  tokens = {ex[features.INSTRUCTION + "_pretokenized"]: ex[features.INSTRUCTION]
            for ex in examples}
  tokens[""] = np.asarray([features.EOS_ID], np.int32)
  return [{**ex, features.INSTRUCTION + "_pretokenized": instructions[ex["task"]],
           features.INSTRUCTION: tokens[instructions[ex["task"]]]} for ex in examples]


def _controls(runner: _Runner, data, examples, true_report, decode: Callable) -> dict:
  """Reliance report: the true instruction against another task's and an empty one."""
  if data.converter != "hint":
    raise ValueError("reliance controls need CONVERTER='hint' (the instruction is separate)")
  true = {ex["task"]: ex[features.INSTRUCTION + "_pretokenized"] for ex in examples}
  conditions = reliance.control_instructions(true)
  overall = {"true": true_report["overall"]}
  for name in ("other", "empty"):
    swapped = _with_instructions(examples, conditions[name])
    overall[name] = _sni_report(swapped, decode(swapped, f"decode ({name} instruction)"))[
        "overall"]
  return reliance.reliance_report(overall)


def _rank_markdown(result: Mapping, title: str) -> str:
  per = {k[len("accuracy_"):]: v for k, v in result["rank_classification"].items()
         if k.startswith("accuracy_")}
  lines = [f"# {title}", "", "| dataset | accuracy | n |", "|---|---|---|"]
  lines += [f"| {d} | {v:.2f} | {result['num_examples'][d]} |" for d, v in sorted(per.items())]
  lines.append(f"| average | {result['rank_classification']['accuracy']:.2f} | "
               f"{sum(result['num_examples'].values())} |")
  return "\n".join(lines) + "\n"


def _markdown(result: Mapping, title: str) -> str:
  if "rank_classification" in result:
    return _rank_markdown(result, title)
  text = sni_report.to_markdown(result["report"], title)
  text += f"\nLoss {result['loss']:.4f}, token accuracy {result.get('accuracy', float('nan')):.4f}.\n"
  if "reliance" in result:
    text += "\n## Instruction-reliance controls\n\n" + reliance.to_markdown(result["reliance"])
  return text


def _write(result: Mapping, model_dir: str, data: assemble.DataConfig, step: int) -> str:
  out_dir = os.path.join(model_dir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  base = os.path.join(out_dir, f"{data.mixture_or_task_name}_{data.split}_{step}")
  with open(base + ".json", "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1, sort_keys=True)
  title = f"{data.mixture_or_task_name} ({data.split}, step {step})"
  with open(base + ".md", "w", encoding="utf-8") as f:
    f.write(_markdown(result, title))
  return base


def evaluate(model: model_config.HintConfig, data: assemble.DataConfig, model_dir: str,
             mesh: mesh_lib.MeshConfig | None = None, checkpoint_step: int | None = None,
             max_decode_len: int | None = None, decode_options: Mapping[str, Any] | None = None,
             vocabulary: str | None = None, max_examples: int | None = None,
             controls: bool = False, progress: bool = True) -> dict[str, float]:
  """The paper's metrics of a checkpoint on `data`, chosen by the task (module docstring).

  Args:
    model, data, model_dir, mesh, checkpoint_step: the run and what to evaluate.
    max_decode_len, decode_options, vocabulary: decoding (generation tasks).
    max_examples: at most this many examples of each task (None: all).
    controls: also decode with another task's and an empty instruction (SNI reliance).
    progress: progress bars on stderr.

  Returns:
    Headline numbers (`rougeL`, `exact_match`, `loss`, ... or `accuracy`, `accuracy_<dataset>`),
    `examples`, `step` and `report` (the base path of the .json/.md written on process 0).
  """
  mesh = mesh or mesh_lib.MeshConfig()
  shard = batches_lib.input_shard(mesh_lib.build(mesh))
  examples, is_rank = _examples(model, data, max_examples)
  ev = _eval_set(data, examples, shard)
  runner = _Runner(model, mesh, model_dir, ev.batches[0], checkpoint_step, progress)
  if is_rank:
    metrics = rank_lib.accuracy(runner.scores(ev), examples)
    counts = collections.Counter(r["dataset"] for r in examples if r["choice_index"] == 0)
    result = {"rank_classification": metrics, "num_examples": dict(counts)}
    headline = {**metrics, "examples": sum(counts.values())}
  else:
    length = max_decode_len or data.task_feature_lengths[features.TARGETS]
    decode = lambda exs, desc: runner.predictions(_eval_set(data, exs, shard), length,
                                                  decode_options or {}, vocabulary, desc)
    report = _sni_report(examples, runner.predictions(ev, length, decode_options or {},
                                                      vocabulary))
    result = {"report": report, **runner.loss(ev)}
    if controls:
      result["reliance"] = _controls(runner, data, examples, report, decode)
    headline = {k: v for k, v in report["overall"].items() if k != "num_examples"}
    headline.update({k: result[k] for k in ("loss", "accuracy") if k in result},
                    examples=len(examples))
  result.update(step=runner.step, task=data.mixture_or_task_name, split=data.split)
  headline["step"] = runner.step
  if jax.process_index() == 0:
    headline["report"] = _write(result, model_dir, data, runner.step)
  return headline


def infer(model: model_config.HintConfig, data: assemble.DataConfig, model_dir: str,
          output_path: str | None = None, mesh: mesh_lib.MeshConfig | None = None,
          checkpoint_step: int | None = None, max_decode_len: int | None = None,
          decode_options: Mapping[str, Any] | None = None, vocabulary: str | None = None,
          max_examples: int | None = None, progress: bool = True) -> str:
  """Decodes every example of `data` (at most `max_examples` per task) and writes one json
  line per example (`index`, `task`, `inputs`, `target`, `prediction`); returns the path.

  Process 0 writes the file (every process holds all predictions).
  """
  mesh = mesh or mesh_lib.MeshConfig()
  shard = batches_lib.input_shard(mesh_lib.build(mesh))
  assemble.check_vocabulary(model, data.mixture_or_task_name)
  assemble.check_instruction_vocab(model, data)
  source = assemble.load_source(data)
  examples = limit_per_task([ex for exs in source.examples for ex in exs], max_examples)
  ev = _eval_set(data, examples, shard)
  runner = _Runner(model, mesh, model_dir, ev.batches[0], checkpoint_step, progress)
  preds = runner.predictions(ev, max_decode_len or data.task_feature_lengths[features.TARGETS],
                             decode_options or {}, vocabulary)
  path = output_path or os.path.join(
      model_dir, "infer", f"{data.mixture_or_task_name}_{data.split}_{runner.step}.jsonl")
  if jax.process_index() != 0:
    return path
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for i, (ex, pred) in enumerate(zip(examples, preds)):
      row = {"index": i, "task": ex.get("task", ""),
             "inputs": ex.get(features.INPUTS + "_pretokenized", ""),
             "target": ex.get(features.TARGETS + "_pretokenized", ""), "prediction": pred}
      f.write(json.dumps(row, ensure_ascii=False) + "\n")
  os.replace(tmp, path)  # no partial output on failure
  return path
