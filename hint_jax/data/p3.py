"""P3 / T0 records: readers (p3_sample jsonl, P3 tfrecords) and masked-template instructions.

HINT's hypernetwork input for P3 is the promptsource template with every field replaced by
`[MASK]`. The original's hand-edited templates (`t0_edited_prompts.txt`, Apache-2.0, see its
NOTICE) are used for every template they cover. Otherwise (or without that file), since
promptsource is not a dependency, the template is recovered from the rendered prompts of one
template: the words present (in order) in every prompt are template text, each run of
varying words is one `[MASK]`. Short islands (<= 2 words) between masks are field content that
happened to match and are folded into the mask.

As T0 (and the original HINT's `t0_train` mixture), only the T0 training datasets train by default
(held-out datasets, `_score_eval` scoring variants and other P3 datasets are skipped; `t0_tasks`),
and a dataset over 500k examples is capped at 500k split evenly over its templates.
"""
import dataclasses
import difflib
import functools
import json
import os
import pathlib
import random
import re
from collections.abc import Callable, Iterator, Sequence

from etils import epath

from hint_jax.data import features as F
from hint_jax.data import paths, schema, t0_tasks

MASK = "[MASK]"
T0_MIXING_CAP = t0_tasks.MAX_EXAMPLES_PER_DATASET  # T0: each dataset capped at 500k examples
_TOKEN = re.compile(r"\S+|\n")
_FIELD = re.compile(r"\[[A-Za-z0-9_]+\]")
EDITED_PROMPTS_PATH = pathlib.Path(__file__).with_name("t0_edited_prompts.txt")
_ENTRY_SEPARATOR = "*" * 28
_ISLAND = 2


class P3FormatError(ValueError):
  """A P3 record that cannot be read; the message names the file and line."""


def _words(text: str) -> list[str]:
  return _TOKEN.findall(text)


def _join(words: Sequence[str]) -> str:
  return " ".join(words).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n").strip()


def _constant_mask(base: list[str], others: Sequence[list[str]]) -> list[bool]:
  keep = [True] * len(base)
  for other in others:
    matched = [False] * len(base)
    matcher = difflib.SequenceMatcher(None, base, other, autojunk=False)
    for start, _, size in matcher.get_matching_blocks():
      matched[start:start + size] = [True] * size
    keep = [k and m for k, m in zip(keep, matched)]
  return keep


def masked_template(prompts: Sequence[str], max_compare: int = 16) -> str:
  """The template text shared by `prompts` with each varying span replaced by `[MASK]`."""
  words = [_words(p) for p in prompts[:max_compare]]
  if len(words) < 2:
    return _join(words[0]) if words else ""
  keep = _constant_mask(words[0], words[1:])
  runs: list[tuple[bool, list[str]]] = []
  for word, k in zip(words[0], keep):
    if runs and runs[-1][0] == k:
      runs[-1][1].append(word)
    else:
      runs.append((k, [word]))
  out: list[str] = []
  for i, (k, ws) in enumerate(runs):
    between_masks = 0 < i < len(runs) - 1
    if k and not (between_masks and len(ws) <= _ISLAND and "\n" not in ws):
      out.extend(ws)
    elif not out or out[-1] != MASK:
      out.append(MASK)
  return _join(out)


@functools.lru_cache(maxsize=4)
def edited_prompts(path: str = str(EDITED_PROMPTS_PATH)) -> dict[str, str]:
  """{P3 task key: masked template} of the original's hand-edited prompts ({} without the file).

  Keys are `_prompt_key` of "<dataset>_<subset>_<template name>"; every `[FIELD]` is `[MASK]`.
  """
  file = pathlib.Path(path)
  if not file.exists():
    return {}
  out = {}
  for entry in file.read_text(encoding="utf-8").split(_ENTRY_SEPARATOR):
    parts = entry.strip().split("\t||||\t")
    if len(parts) == 3:
      out[_prompt_key(parts[0] + "_" + parts[1])] = _FIELD.sub(MASK, parts[2])
  return out


def _prompt_key(task_name: str) -> str:
  key = t0_tasks.normalise(task_name).lower()
  return key.removesuffix(t0_tasks.SCORE_EVAL_SUFFIX)


def instruction_for(name: str, recover: Callable[[], str], cfg: "P3Config") -> str:
  """The hypernetwork text of template `name` ("" for `concat`): the edited prompt if there is
  one (and `cfg.edited_prompts`), else `recover()` (the template recovered from the prompts)."""
  if cfg.fmt != "hint":
    return ""
  edited = edited_prompts().get(_prompt_key(name)) if cfg.edited_prompts else None
  return recover() if edited is None else edited


@dataclasses.dataclass(frozen=True)
class P3Config:
  """How P3 records are built.

  Attributes:
    p3_dir: directory with `templates/*.jsonl` (None = the configured data).
    fmt: "hint" (masked template -> instruction) or "concat" (prompt only, T0 style).
    validation_per_template: last examples of each template kept for `validation`.
    cap: T0's per-dataset cap: a dataset with more examples keeps a seeded subset of
      `cap // num_templates` examples of each of its templates (T0's examples-proportional
      mixing limit); smaller datasets keep everything. The dataset size is T0's train size for
      the T0 datasets, else the template's record count (each unknown template its own dataset);
      `num_templates` counts the dataset's templates present in the data.
    seed: seed of the capped subset.
    t0_train_only: keep only templates of the T0 training datasets (`t0_tasks`): held-out
      datasets, `_score_eval` variants and other P3 datasets never train.
    edited_prompts: use the original's hand-edited masked templates where they cover a template
      (False: always recover the template from the rendered prompts).
    tfrecord_dir: read P3 tfrecords instead, laid out as in the P3 release:
      `<tfrecord_dir>/<task>/<split>.tfrecord-*` (splits are the file prefixes).
  """
  p3_dir: str | os.PathLike | None = None
  tfrecord_dir: str | os.PathLike | None = None
  fmt: str = "hint"
  validation_per_template: int = 5
  cap: int = T0_MIXING_CAP
  seed: int = 0
  t0_train_only: bool = True
  edited_prompts: bool = True


_STRING_FIELDS = (("inputs", True), ("targets", True), ("template", False))


def check_record(record, where: str) -> dict:
  """`record` if it follows the p3_sample schema, else a one-line `P3FormatError`.

  Schema: a JSON object with string `inputs` (not blank) and `targets` (may be empty: P3 has
  empty answers), optional string `template`, optional `answer_choices` (list of strings) and
  optional boolean `is_correct`; no string holds a lone surrogate. `where` is "<file>:<line>".
  """
  if not isinstance(record, dict):
    raise P3FormatError(f"{where}: a record must be a JSON object, got {schema.kind(record)}")
  for key, required in _STRING_FIELDS:
    if key not in record:
      if required:
        raise P3FormatError(f"{where}: missing field {key!r}")
      continue
    if not isinstance(record[key], str):
      raise P3FormatError(f"{where}: field {key!r} must be a string, "
                          f"got {schema.kind(record[key])}")
    schema.checked_str(record[key], where, key, P3FormatError)
  if not record["inputs"].strip():
    raise P3FormatError(f"{where}: field 'inputs' is empty")
  choices = record.get("answer_choices", [])
  if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
    bad = choices if not isinstance(choices, list) else next(
        c for c in choices if not isinstance(c, str))
    holding = "a list holding " if isinstance(choices, list) else ""
    raise P3FormatError(f"{where}: field 'answer_choices' must be a list of strings, "
                        f"got {holding}{schema.kind(bad)}")
  for i, choice in enumerate(choices):
    schema.checked_str(choice, where, f"answer_choices[{i}]", P3FormatError)
  if not isinstance(record.get("is_correct", False), bool):
    raise P3FormatError(f"{where}: field 'is_correct' must be a boolean, "
                        f"got {schema.kind(record['is_correct'])}")
  return record


def read_jsonl(path: epath.Path) -> list[dict]:
  """Records `{template, inputs, targets}` of one p3_sample file, each checked by `check_record`.

  Raises:
    P3FormatError: non-UTF-8 bytes, a line that is not JSON, or a record off the schema (one
      line naming the file, the line and the field).
  """
  data = path.read_bytes()
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise P3FormatError(f"{path}:{line}: not valid UTF-8 (byte {e.start})") from None
  out = []
  for i, line in enumerate(text.split("\n")):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise P3FormatError(f"{path}:{i + 1}: malformed JSON: {e}") from None
    except RecursionError:
      raise P3FormatError(f"{path}:{i + 1}: malformed JSON: nested too deeply") from None
    out.append(check_record(record, f"{path}:{i + 1}"))
  return out


def _plain_name(name, what: str) -> str:
  """`name` if it is a plain file name (no separators, no leading '.', no NUL, not empty)."""
  if (not isinstance(name, str) or not name or name.startswith(".") or "\x00" in name
      or "/" in name or "\\" in name or os.sep in name
      or (os.altsep is not None and os.altsep in name)):
    raise P3FormatError(f"bad P3 {what} name {name!r}: a {what} name is a plain file name "
                        "inside the P3 data directory (no path separators, no leading '.')")
  return name


def template_path(name: str, p3_dir: str | os.PathLike | None = None) -> epath.Path:
  """`<p3_dir>/templates/<name>.jsonl`, refusing names that would reach outside `templates/`."""
  return paths.p3_dir(p3_dir) / "templates" / f"{_plain_name(name, 'template')}.jsonl"


def read_template(name: str, p3_dir: str | os.PathLike | None = None) -> list[dict]:
  """The checked records of template `name` (see `read_jsonl`).

  Raises:
    P3FormatError: a bad template name, no such file, or a malformed file.
  """
  path = template_path(name, p3_dir)
  if not path.exists():
    raise P3FormatError(f"unknown P3 template {name!r}: no file {path}")
  return read_jsonl(path)


def read_tfrecord(path: str) -> list[dict]:
  """Records of a P3 tfrecord file (`inputs_pretokenized`, `targets_pretokenized`, and the
  optional `answer_choices` / `is_correct` of the scoring variants).

  Raises:
    P3FormatError: a record that does not parse (a missing or mistyped feature, a damaged
      file) or holds non-UTF-8 text, naming the file, the record index and the feature.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # only this reader needs TF
  spec = {"inputs_pretokenized": tf.io.FixedLenFeature([], tf.string),
          "targets_pretokenized": tf.io.FixedLenFeature([], tf.string),
          "answer_choices": tf.io.VarLenFeature(tf.string),
          "is_correct": tf.io.VarLenFeature(tf.int64)}

  def text(value: bytes, i: int, key: str) -> str:
    try:
      return value.decode("utf-8")
    except UnicodeDecodeError as e:
      raise P3FormatError(f"{path}: record {i}: feature {key!r} is not valid UTF-8 "
                          f"(byte {e.start})") from None

  out: list[dict] = []
  try:
    for raw in tf.data.TFRecordDataset(path):
      i = len(out)
      ex = tf.io.parse_single_example(raw, spec)
      choices = [text(c, i, "answer_choices")
                 for c in tf.sparse.to_dense(ex["answer_choices"]).numpy()]
      record = {"inputs": text(ex["inputs_pretokenized"].numpy(), i, "inputs_pretokenized"),
                "targets": text(ex["targets_pretokenized"].numpy(), i,
                                "targets_pretokenized").strip(),
                "answer_choices": choices}
      correct = tf.sparse.to_dense(ex["is_correct"]).numpy().tolist()
      if correct:
        record["is_correct"] = bool(correct[0])
      out.append(record)
  except tf.errors.OpError as e:
    first = (e.message or type(e).__name__).strip().splitlines()[0]
    raise P3FormatError(f"{path}: record {len(out)}: {first}") from None
  return out


@functools.lru_cache(maxsize=4096)
def _template_of(path: str) -> str:
  return masked_template([r["inputs"] for r in read_jsonl(epath.Path(path))])


def template_files(cfg: P3Config) -> list[epath.Path]:
  files = sorted(paths.p3_dir(cfg.p3_dir).glob("templates/*.jsonl"))
  if not files:
    raise P3FormatError(f"no P3 template files under {paths.p3_dir(cfg.p3_dir)}/templates")
  return files


def _selected(names: Sequence[str], cfg: P3Config) -> dict[str, int]:
  """{template name: template count of its dataset} for the templates kept by the T0 filter."""
  kept = [n for n in names if not cfg.t0_train_only or t0_tasks.train_dataset(n) is not None]
  dataset = {n: t0_tasks.train_dataset(n) or n for n in kept}
  per_dataset: dict = {}
  for n in kept:
    if not t0_tasks.normalise(n).endswith(t0_tasks.SCORE_EVAL_SUFFIX):
      per_dataset[dataset[n]] = per_dataset.get(dataset[n], 0) + 1
  return {n: per_dataset.get(dataset[n], 1) for n in kept}


def _capped(recs: list, name: str, num_templates: int, cfg: P3Config) -> list:
  """T0's cap: a seeded `cap // num_templates` subset when the template's dataset is over `cap`."""
  size = t0_tasks.T0_TRAIN_DATASETS.get(t0_tasks.train_dataset(name), len(recs))
  limit = t0_tasks.template_cap(size, num_templates, cfg.cap)
  if limit is None or len(recs) <= limit:
    return recs
  return random.Random(f"{cfg.seed}/{name}").sample(recs, limit)


def tfrecord_records(split: str, cfg: P3Config) -> Iterator[dict]:
  """Yields records of `<tfrecord_dir>/<task>/<split>.tfrecord-*`, task by task (sorted)."""
  root = epath.Path(cfg.tfrecord_dir)
  _plain_name(split, "split")  # the split is a file-name prefix inside each task directory
  task_dirs = sorted(p for p in root.iterdir() if p.is_dir())
  if not task_dirs:
    raise P3FormatError(f"no P3 task directories under {root}")
  num_templates = _selected([d.name for d in task_dirs], cfg)
  for task_dir in (d for d in task_dirs if d.name in num_templates):
    recs = [r for f in sorted(task_dir.glob(f"{split}.tfrecord*")) for r in read_tfrecord(str(f))]
    if not recs:
      continue
    template = instruction_for(
        task_dir.name, lambda recs=recs: masked_template([r["inputs"] for r in recs]), cfg)
    recs = _capped(recs, task_dir.name, num_templates[task_dir.name], cfg)
    for r in recs:
      yield {F.INSTRUCTION: template, F.INPUTS: r["inputs"], F.TARGETS: r["targets"],
             "task": task_dir.name}


def records(split: str, cfg: P3Config = P3Config()) -> Iterator[dict]:
  """Yields `{instruction, inputs, targets, task}` for `split` ("train" or "validation")."""
  if cfg.tfrecord_dir is not None:
    yield from tfrecord_records(split, cfg)
    return
  if split not in ("train", "validation"):
    raise ValueError(f"unknown P3 split {split!r}; available: ('train', 'validation')")
  files = template_files(cfg)
  num_templates = _selected([f.stem for f in files], cfg)
  for path in (f for f in files if f.stem in num_templates):
    recs = read_jsonl(path)
    template = instruction_for(path.stem, lambda path=path: _template_of(str(path)), cfg)
    cut = len(recs) - cfg.validation_per_template
    chosen = _capped(recs[:cut] if split == "train" else recs[cut:], path.stem,
                     num_templates[path.stem], cfg)
    for r in chosen:
      yield {F.INSTRUCTION: template, F.INPUTS: r["inputs"], F.TARGETS: r["targets"].strip(),
             "task": r.get("template", path.stem)}
