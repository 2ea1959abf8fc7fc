"""The synthetic instruction suite: list transformations fully determined by their instruction.

Every task applies one operation (reverse, sort, the n-th item, ...) to a short list of words or
numbers. The instruction (one of several paraphrases) names the operation and the item kind, so a
model that reads the instruction can solve the task; the inputs alone cannot tell which task it is.
Inputs read `Input: <items>`, like the input part of the SNI format ("... Input: <x> Output:"):
the concatenation format is `<instruction> <inputs>`, so the two formats differ only in where
the instruction goes, and both give the encoder a fixed token before the first item (T5 has no
absolute positions; without it, position-addressed operations are much harder to learn).

Splits (all deterministic functions of the seed):
* `train`: seen tasks with their seen paraphrases;
* `validation`: seen tasks and seen paraphrases on inputs that never occur in `train`;
* `heldout_paraphrase`: seen tasks with a paraphrase never used in training;
* `heldout_task`: operation/kind pairs never trained on, whose operation is trained with the other
  kind and whose kind is trained with other operations (e.g. "the second word" is held out while
  "the second number", "the first word" and "the third word" are trained).

Formats (`generate(num_pos=k, fmt=...)`), Def (k = 0) and Def + k Pos (k worked examples of the
task), built with the SNI code (`sni_format`) from a task whose definition is the paraphrase and
whose positive examples are the task's fixed demonstrations (`demonstrations`, per task and seed,
like the positive examples of an SNI task file; no example of any split reuses their inputs):
* `hint`: the hypernetwork reads the paraphrase (k = 0) or the published HINT Def+kPos text,
  " Positive Example i -\nInput: <items>.\n Output: <target>.\n" blocks prepended to
  "Definition: <paraphrase>" (`sni_format.hint_instruction`); the encoder reads
  `Input: <items>` as in Def.
* `concat`: no instruction; the encoder reads `<paraphrase> Input: <items>` (k = 0, the
  registered `synthetic_concat`) or the Tk-Instruct string (k > 0,
  `sni_format.tk_instruct_input`: "Definition: ...\n\n", the k example blocks, "Now complete
  the following example -\nInput: <items>.\nOutput: ").
* `split`: the `concat` text cut into instruction | inputs, such that
  `concat_template(k).format(instruction=..., input=...)` is the `concat` input (what the serving
  `Predictor` of the baseline joins, and what an instruction-swap control replaces).
"""
import dataclasses
import functools
import random
from collections.abc import Callable, Iterator, Sequence

from hint_jax.data import features, sni_format, sni_reader

WORDS = ("apple", "ball", "banana", "bird", "book", "box", "bread", "car", "cat", "cup", "dog",
         "door", "egg", "fish", "hat", "milk", "nut", "rose", "star", "sun")
NUMBERS = tuple(range(1, 21))
KINDS = ("words", "numbers")
MIN_ITEMS, MAX_ITEMS = 3, 5
INPUT_PREFIX = "Input: "
SPLITS = ("train", "validation", "heldout_paraphrase", "heldout_task")
HELDOUT_TASKS = ("second_words", "sort_desc_words", "last_two_numbers", "drop_last_numbers")
# Lengths (tokens, EOS included) that fit every example of every split with the default vocab.
FEATURE_LENGTHS = {features.INSTRUCTION: 16, features.INPUTS: 10, features.TARGETS: 12}
CONCAT_FEATURE_LENGTHS = {features.INSTRUCTION: 16, features.INPUTS: 32, features.TARGETS: 12}
NUM_POS = (0, 2)  # the formats studied: Def and Def + 2 Pos
MAX_POS = 2  # demonstrations drawn per task (the first k are shown)
FORMATS = ("hint", "concat", "split")
EXAMPLES_PER_TASK = {"train": 300, "validation": 20, "heldout_paraphrase": 20,
                     "heldout_task": 40}

_Op = Callable[[list], list]
_SINGULAR = {"words": "word", "numbers": "number"}


# name -> (operation, kinds it applies to, paraphrases; the last paraphrase is held out).
_OPS: dict[str, tuple[_Op, tuple[str, ...], tuple[str, ...]]] = {
    "copy": (lambda xs: xs, KINDS, (
        "Repeat the {items}.", "Copy the list of {items}.", "Write the {items} again.",
        "Output the same {items} unchanged.")),
    "reverse": (lambda xs: xs[::-1], KINDS, (
        "Reverse the {items}.", "Write the {items} in reverse order.",
        "List the {items} backwards.", "Output the {items} from last to first.")),
    "first": (lambda xs: xs[:1], KINDS, (
        "Write the first {item}.", "What is the first {item}?", "Give the {item} at position one.",
        "Output only the first {item}.")),
    "second": (lambda xs: xs[1:2], KINDS, (
        "Write the second {item}.", "What is the second {item}?",
        "Give the {item} at position two.", "Output only the second {item}.")),
    "third": (lambda xs: xs[2:3], KINDS, (
        "Write the third {item}.", "What is the third {item}?",
        "Give the {item} at position three.", "Output only the third {item}.")),
    "last": (lambda xs: xs[-1:], KINDS, (
        "Write the last {item}.", "What is the last {item}?", "Give the final {item}.",
        "Output only the last {item}.")),
    "first_two": (lambda xs: xs[:2], KINDS, (
        "Write the first two {items}.", "What are the first two {items}?",
        "Give the two {items} at the start.", "Output only the first two {items}.")),
    "last_two": (lambda xs: xs[-2:], KINDS, (
        "Write the last two {items}.", "What are the last two {items}?",
        "Give the two {items} at the end.", "Output only the last two {items}.")),
    "drop_first": (lambda xs: xs[1:], KINDS, (
        "Remove the first {item}.", "Write the {items} without the first one.",
        "Delete the first {item} from the list.", "Output all {items} except the first.")),
    "drop_last": (lambda xs: xs[:-1], KINDS, (
        "Remove the last {item}.", "Write the {items} without the last one.",
        "Delete the last {item} from the list.", "Output all {items} except the last.")),
    "count": (lambda xs: [len(xs)], KINDS, (
        "Count the {items}.", "How many {items} are there?", "Write the number of {items}.",
        "Output how many {items} the list has.")),
    "sort_asc": (lambda xs: sorted(xs), KINDS, (
        "Sort the {items} in ascending order.", "Write the {items} from smallest to largest.",
        "Put the {items} in increasing order.", "Output the {items} sorted in ascending order.")),
    "sort_desc": (lambda xs: sorted(xs, reverse=True), KINDS, (
        "Sort the {items} in descending order.", "Write the {items} from largest to smallest.",
        "Put the {items} in decreasing order.",
        "Output the {items} sorted in descending order.")),
    "min": (lambda xs: [min(xs)], ("numbers",), (
        "Write the smallest {item}.", "What is the smallest {item}?",
        "Give the {item} that comes first in ascending order.", "Output only the lowest {item}.")),
    "max": (lambda xs: [max(xs)], ("numbers",), (
        "Write the largest {item}.", "What is the largest {item}?",
        "Give the {item} that comes last in ascending order.", "Output only the highest {item}.")),
    "double": (lambda xs: [x for x in xs for _ in range(2)], KINDS, (
        "Repeat each {item} twice.", "Write every {item} two times.", "Double each {item}.",
        "Output each {item} followed by itself.")),
    "add_one": (lambda xs: [x + 1 for x in xs], ("numbers",), (
        "Add one to each number.", "Increase every number by one.",
        "Write each number plus one.", "Output every number incremented by 1.")),
    "subtract_one": (lambda xs: [x - 1 for x in xs], ("numbers",), (
        "Subtract one from each number.", "Decrease every number by one.",
        "Write each number minus one.", "Output every number decremented by 1.")),
}


@dataclasses.dataclass(frozen=True)
class SyntheticTask:
  """One operation applied to one kind of item."""
  name: str  # "<op>_<kind>", e.g. "reverse_words"
  op: str
  kind: str

  def apply(self, items: Sequence) -> str:
    return " ".join(str(x) for x in _OPS[self.op][0](list(items)))

  def paraphrases(self) -> tuple[str, ...]:
    return tuple(p.format(items=self.kind, item=_SINGULAR[self.kind]) for p in _OPS[self.op][2])


def all_tasks() -> tuple[SyntheticTask, ...]:
  """Every task of the suite, seen and held out, in a fixed order."""
  return tuple(SyntheticTask(f"{op}_{kind}", op, kind)
               for op, (_, kinds, _) in _OPS.items() for kind in kinds)


def tasks_for_split(split: str) -> tuple[SyntheticTask, ...]:
  """Tasks used by `split` (held-out tasks only in `heldout_task`)."""
  _check_split(split)
  held = split == "heldout_task"
  return tuple(t for t in all_tasks() if (t.name in HELDOUT_TASKS) == held)


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"unknown synthetic split {split!r}; available: {', '.join(SPLITS)}")


def _paraphrases_for(task: SyntheticTask, split: str) -> tuple[str, ...]:
  texts = task.paraphrases()
  if split == "heldout_paraphrase":
    return texts[-1:]
  return texts if split == "heldout_task" else texts[:-1]


def _sample_items(rng: random.Random, kind: str) -> list:
  pool = WORDS if kind == "words" else NUMBERS
  return rng.sample(pool, rng.randint(MIN_ITEMS, MAX_ITEMS))


def _items_text(items: Sequence) -> str:
  return " ".join(str(x) for x in items)


def demonstrations(task: SyntheticTask, seed: int = 0,
                   num_pos: int = MAX_POS) -> tuple[sni_reader.Example, ...]:
  """The task's first `num_pos` worked examples (items text -> target), fixed per task and seed."""
  if not 0 <= num_pos <= MAX_POS:
    raise ValueError(f"num_pos must be in [0, {MAX_POS}], got {num_pos}")
  return _demonstrations(task, seed)[:num_pos]


@functools.cache
def _demonstrations(task: SyntheticTask, seed: int) -> tuple[sni_reader.Example, ...]:
  rng = random.Random(f"{seed}/demonstrations/{task.name}")
  out, seen = [], set()
  while len(out) < MAX_POS:
    items = _sample_items(rng, task.kind)
    if (text := _items_text(items)) not in seen:
      seen.add(text)
      out.append(sni_reader.Example(input=text, output=task.apply(items)))
  return tuple(out)


def concat_template(num_pos: int) -> str:
  """How the baseline joins the `split` format's instruction and inputs (`str.format`)."""
  return "{instruction} {input}" if num_pos == 0 else "{instruction}{input}"


def format_example(task: SyntheticTask, paraphrase: str, items: Sequence, seed: int = 0,
                   num_pos: int = 0, fmt: str = "hint") -> tuple[str, str]:
  """(instruction, inputs) of one example of `task` in format `fmt` (module docstring)."""
  if fmt not in FORMATS:
    raise ValueError(f"unknown synthetic format {fmt!r}; available: {', '.join(FORMATS)}")
  hint_text, concat_text = _instructions(task, paraphrase, seed, num_pos)
  items_text = _items_text(items)
  if fmt == "hint":
    return hint_text, INPUT_PREFIX + items_text
  inputs = (INPUT_PREFIX + items_text if num_pos == 0
            else sni_format.instance_input(items_text))
  if fmt == "concat":
    return "", concat_template(num_pos).format(instruction=concat_text, input=inputs)
  return concat_text, inputs


@functools.lru_cache(maxsize=4096)
def _instructions(task: SyntheticTask, paraphrase: str, seed: int,
                  num_pos: int) -> tuple[str, str]:
  """(HINT hypernetwork text, baseline's instruction part) of one paraphrase of `task`."""
  sni_task = sni_reader.SniTask(name=task.name, definition=paraphrase,
                                positive_examples=demonstrations(task, seed, num_pos),
                                instances=(), category="synthetic", is_english=True)
  concat = paraphrase if num_pos == 0 else sni_format.instruction(sni_task, num_pos)
  return sni_format.hint_instruction(sni_task, num_pos), concat


@functools.lru_cache(maxsize=8)
def _train_inputs(seed: int, count: int | None) -> frozenset[tuple[str, str]]:
  return frozenset((ex["task"], ex[features.INPUTS]) for ex in generate("train", seed, count))


def generate(split: str, seed: int = 0, examples_per_task: int | None = None,
             train_examples_per_task: int | None = None, num_pos: int = 0,
             fmt: str = "hint") -> Iterator[dict[str, str]]:
  """Yields the examples of `split` in a fixed order (task by task).

  Every format and `num_pos` gives the same examples (tasks, paraphrases, items, targets) in the
  same order; only the instruction and inputs texts differ.

  Args:
    split: one of `SPLITS`.
    seed: suite seed; the same seed always gives the same examples.
    examples_per_task: overrides `EXAMPLES_PER_TASK[split]`.
    train_examples_per_task: the size of the train split in use (default
      `EXAMPLES_PER_TASK["train"]`); `validation` avoids all of its inputs.
    num_pos: worked examples shown with the instruction (0: Def; at most `MAX_POS`).
    fmt: "hint", "concat" or "split" (module docstring).

  Yields:
    dicts with `instruction`, `inputs`, `targets` strings and the `task` name.
  """
  _check_split(split)
  format_example(all_tasks()[0], "", [], seed, num_pos, fmt)  # checks `num_pos` and `fmt` early
  count = examples_per_task or EXAMPLES_PER_TASK[split]
  avoid = (_train_inputs(seed, train_examples_per_task) if split == "validation"
           else frozenset())
  for task in tasks_for_split(split):
    rng = random.Random(f"{seed}/{split}/{task.name}")
    texts = _paraphrases_for(task, split)
    shown = {d.input for d in demonstrations(task, seed)}
    made = 0
    while made < count:
      items = _sample_items(rng, task.kind)
      if (task.name, INPUT_PREFIX + _items_text(items)) in avoid or _items_text(items) in shown:
        continue
      made += 1
      instruction, inputs = format_example(task, rng.choice(texts), items, seed, num_pos, fmt)
      yield {features.INSTRUCTION: instruction, features.INPUTS: inputs,
             features.TARGETS: task.apply(items), "task": task.name}


def exact_match(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Exact string match after stripping surrounding whitespace, x100."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  hits = sum(t.strip() == p.strip() for t, p in zip(targets, predictions))
  return {"exact_match": 100.0 * hits / max(len(targets), 1)}
