"""The demo's evaluation: both models in every instruction format through the serving Predictor,
true vs another task's instruction, throughput and analytic FLOPs per example."""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from flax import traverse_util

from hint_jax.data import features as F
from hint_jax.data import sni_examples, sni_metrics, synthetic
from hint_jax.data import vocab as vocab_lib
from hint_jax.evaluation import flops as flops_lib
from hint_jax.evaluation import reliance
from hint_jax.models import baseline
from hint_jax.models import config as model_config
from hint_jax.run.demo_report import FORMATS, HELDOUT, MODELS
from hint_jax.serving import predictor as predictor_lib

# Concatenation-baseline input text (as the registered `synthetic_concat` / `sni_*_concat` tasks).
TEMPLATES = {"synthetic": "{instruction} {input}", "sni": "{instruction}{input}"}
BUCKETS = {"hint": predictor_lib.Buckets((32,), (12, 24), (16, 32, 80), max_decode_len=12),
           "concat": predictor_lib.Buckets((32,), (32, 56, 96), (32,), max_decode_len=12)}


def as_concat(records: Sequence[Mapping[str, str]], kind: str,
              template: str | None = None) -> list[dict]:
  """Concatenation-baseline records: the instruction moves into the input text (`template`,
  default `TEMPLATES[kind]`)."""
  template = TEMPLATES[kind] if template is None else template
  return [{**r, F.INSTRUCTION: "", F.INPUTS: template.format(
      instruction=r[F.INSTRUCTION], input=r[F.INPUTS])} for r in records]


def make_predictor(model_cfg: model_config.HintConfig, flat_params: Mapping[str, np.ndarray],
                   kind: str = "synthetic", template: str | None = None,
                   instruction_vocab=None) -> predictor_lib.Predictor:
  """A serving `Predictor` (fresh TaskParams cache) for the demo's lengths and the baseline's
  template (`template`, default `TEMPLATES[kind]`); `instruction_vocab`: the WordPiece
  vocabulary of a BERT instruction encoder (`HintConfig.bert`), else None."""
  name = "hint" if model_cfg.uses_instruction else "concat"
  params = jax.tree.map(jnp.asarray, traverse_util.unflatten_dict(dict(flat_params), sep="/"))
  return predictor_lib.Predictor(baseline.build(model_cfg), params, vocab_lib.get_vocabulary(),
                                 buckets=BUCKETS[name],
                                 concat_template=TEMPLATES[kind] if template is None else template,
                                 instruction_vocab=instruction_vocab if model_cfg.bert else None)


def other_instructions(records: Sequence[Mapping[str, str]], seed: int) -> list[str]:
  """Each record's instruction replaced by another task's (a seeded derangement of tasks)."""
  first = {}
  for r in records:
    first.setdefault(r["task"], r[F.INSTRUCTION])
  other = reliance.other_task_instructions(first, seed)
  return [other[r["task"]] for r in records]


def score(split: str, records: Sequence[Mapping], predictions: Sequence[str]) -> float:
  """Exact match x100 (synthetic) or the official SNI ROUGE-L x100 (SNI)."""
  if split == "sni_test":
    return sni_metrics.compute_metrics(predictions, [r["references"] for r in records])["rougeL"]
  return synthetic.exact_match([r[F.TARGETS] for r in records], predictions)["exact_match"]


def evaluate(seed: int, model_cfg: model_config.HintConfig, flat: Mapping[str, np.ndarray],
             records: Mapping[str, list[dict]], bar: tqdm.tqdm, num_pos: int = 0,
             instruction_vocab=None) -> dict:
  """Scores with the true and another task's instruction on every eval split, plus throughput.

  `records` are in the `synthetic` format the model reads (`hint`, or `split` for the baseline,
  whose predictor joins instruction and input with `synthetic.concat_template(num_pos)`).
  """
  out: dict = {"true": {}, "other": {}, "samples": {}}
  template = synthetic.concat_template(num_pos)
  for split, recs in records.items():
    pred = make_predictor(model_cfg, flat, "sni" if split == "sni_test" else "synthetic",
                          None if split == "sni_test" else template, instruction_vocab)
    inputs = [r[F.INPUTS] for r in recs]
    texts = {"true": [r[F.INSTRUCTION] for r in recs], "other": other_instructions(recs, seed)}
    for cond in ("true", "other"):
      predictions = pred.generate(texts[cond], inputs)
      out[cond][split] = score(split, recs, predictions)
      picks = range(0, len(recs), max(1, len(recs) // 3))
      out["samples"].setdefault(split, {})[cond] = [
          (texts[cond][i], inputs[i], recs[i][F.TARGETS], predictions[i]) for i in picks][:3]
      bar.update(1)
  out["examples_per_s"] = throughput(model_cfg, flat, records["heldout_task"], template,
                                     instruction_vocab)
  bar.update(1)
  return out


def throughput(model_cfg, flat, records: Sequence[Mapping], template: str | None = None,
               instruction_vocab=None) -> float:
  """Examples/s of greedy decoding, from a cold TaskParams cache (hypernet cost included)."""
  pred = make_predictor(model_cfg, flat, template=template, instruction_vocab=instruction_vocab)
  texts, inputs = [r[F.INSTRUCTION] for r in records], [r[F.INPUTS] for r in records]
  pred.generate(texts[:1], inputs[:1])  # compile (the compiled step is shared per config)
  pred = make_predictor(model_cfg, flat, template=template, instruction_vocab=instruction_vocab)
  start = time.perf_counter()
  pred.generate(texts, inputs)
  return len(records) / (time.perf_counter() - start)


def flops_per_example(cfgs: Mapping[str, model_config.HintConfig],
                      records: Sequence[Mapping[str, str]], vocab, kind: str = "synthetic",
                      concat_records: Sequence[Mapping[str, str]] | None = None,
                      instruction_vocab=None) -> dict[str, float]:
  """Analytic forward FLOPs per example on `records` (HINT format; the baseline reads the inputs
  of `concat_records`, default `as_concat(records, kind)`); HINT's hypernetwork is amortised over
  the examples sharing an instruction, the baseline re-reads the instruction with every example.
  Instruction lengths count `instruction_vocab`'s tokens when HINT encodes them with BERT."""
  def mean_len(texts, by=vocab):
    return max(1, round(float(np.mean([len(t) + 1 for t in by.encode_batch(list(texts))]))))
  concat = as_concat(records, kind) if concat_records is None else list(concat_records)
  hint = cfgs["hint"]
  by = instruction_vocab if hint.bert is not None and instruction_vocab is not None else vocab
  lengths = flops_lib.Lengths(instruction=mean_len((r[F.INSTRUCTION] for r in records), by),
                              inputs=mean_len(r[F.INPUTS] for r in records),
                              targets=mean_len(r[F.TARGETS] for r in records),
                              concat_inputs=mean_len(r[F.INPUTS] for r in concat))
  per_instruction = len(records) / len({r[F.INSTRUCTION] for r in records})
  return {"hint": flops_lib.hint_flops(hint.t5, hint.peft, hint.hypernet, lengths, hint.fusion,
                                       bert=hint.bert).per_example(per_instruction),
          "concat": flops_lib.concat_flops(cfgs["concat"].t5, lengths).per_example(1)}


def evaluate_all(seed: int, cfgs, flat, records, vocab, instruction_vocab=None) -> dict:
  """Both models in every format on every eval split, with FLOPs and the instruction gain
  (`instruction_vocab`: HINT's WordPiece vocabulary when it encodes instructions with BERT).

  Returns:
    {model: {format: scores, samples, throughput, FLOPs per example, held-out EM, gain}}.
  """
  flops = {}
  for name, k in FORMATS.items():
    hint_recs, split_recs = records["hint"][name], records["concat"][name]
    template = synthetic.concat_template(k)
    flops[name] = {"synthetic": flops_per_example(
        cfgs, hint_recs["heldout_task"], vocab,
        concat_records=as_concat(split_recs["heldout_task"], "synthetic", template),
        instruction_vocab=instruction_vocab)}
    if "sni_test" in hint_recs:
      flops[name]["sni"] = flops_per_example(cfgs, hint_recs["sni_test"], vocab, "sni",
                                             instruction_vocab=instruction_vocab)
  out = {}
  total = sum(2 * len(recs) + 1 for by_fmt in records.values() for recs in by_fmt.values())
  with tqdm.tqdm(total=total, desc="eval", dynamic_ncols=True) as bar:
    for model in MODELS:
      for name, k in FORMATS.items():
        r = evaluate(seed, cfgs[model], flat[model], records[model][name], bar, k,
                     instruction_vocab)
        gains = [r["true"][s] - r["other"][s] for s in HELDOUT]
        out.setdefault(model, {})[name] = {
            **r, "flops": {kind: v[model] for kind, v in flops[name].items()},
            "heldout_em": float(np.mean([r["true"][s] for s in HELDOUT])),
            "instruction_gain": float(np.mean(gains))}
  return out


def eval_records(cfg, num_pos: int = 0,
                 fmt: str = "split") -> dict[str, list[dict]]:
  """Seen-task validation, both held-out splits (4x examples per held-out task) in `synthetic`
  format `fmt` with `num_pos` worked examples, and (Def only) the SNI test subset; `cfg` is a
  `demo.DemoConfig`."""
  out = {s: list(synthetic.generate(s, cfg.seed, cfg.eval_per_task * (1 + 3 * (s == HELDOUT[1])),
                                    cfg.synthetic_per_task, num_pos=num_pos, fmt=fmt))
         for s in ("validation",) + HELDOUT}
  if num_pos:
    return out
  sni = list(sni_examples.records("test", sni_examples.SniConfig()))
  tasks = list(dict.fromkeys(r["task"] for r in sni))
  chosen = tasks[:: max(1, len(tasks) // cfg.sni_tasks)][:cfg.sni_tasks]
  by_task = {t: [r for r in sni if r["task"] == t][:cfg.sni_per_task] for t in chosen}
  return {**out, "sni_test": [r for t in chosen for r in by_task[t]]}


def all_eval_records(cfg) -> dict[str, dict[str, dict[str, list[dict]]]]:
  """{model: {format: {split: records}}}: every format (`FORMATS`) as the model reads it."""
  return {model: {name: eval_records(cfg, k, "hint" if model == "hint" else "split")
                  for name, k in FORMATS.items()} for model in MODELS}
