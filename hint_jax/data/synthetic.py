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
"""
import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence

from hint_jax.data import features

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


def _train_inputs(seed: int, count: int | None) -> set[tuple[str, str]]:
  return {(ex["task"], ex[features.INPUTS]) for ex in generate("train", seed, count)}


def generate(split: str, seed: int = 0, examples_per_task: int | None = None,
             train_examples_per_task: int | None = None) -> Iterator[dict[str, str]]:
  """Yields the examples of `split` in a fixed order (task by task).

  Args:
    split: one of `SPLITS`.
    seed: suite seed; the same seed always gives the same examples.
    examples_per_task: overrides `EXAMPLES_PER_TASK[split]`.
    train_examples_per_task: the size of the train split in use (default
      `EXAMPLES_PER_TASK["train"]`); `validation` avoids all of its inputs.

  Yields:
    dicts with `instruction`, `inputs`, `targets` strings and the `task` name.
  """
  _check_split(split)
  count = examples_per_task or EXAMPLES_PER_TASK[split]
  avoid = _train_inputs(seed, train_examples_per_task) if split == "validation" else set()
  for task in tasks_for_split(split):
    rng = random.Random(f"{seed}/{split}/{task.name}")
    texts = _paraphrases_for(task, split)
    made = 0
    while made < count:
      items = _sample_items(rng, task.kind)
      inputs = INPUT_PREFIX + " ".join(str(x) for x in items)
      if (task.name, inputs) in avoid:
        continue
      made += 1
      yield {features.INSTRUCTION: rng.choice(texts), features.INPUTS: inputs,
             features.TARGETS: task.apply(items), "task": task.name}


def exact_match(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Exact string match after stripping surrounding whitespace, x100."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  hits = sum(t.strip() == p.strip() for t, p in zip(targets, predictions))
  return {"exact_match": 100.0 * hits / max(len(targets), 1)}
