"""P3 few-shot records: k examples of the same template with every example (the original's
`t0_train_{k}_shot` / `t0_eval_score_eval_{k}_shot`, `seqio_tasks/my_t0_tasks.py` and
`seqio_tasks/few_shot.py`, itself FLAN's few-shot code).

The shots of an example are `k` other examples of its template drawn from the template's `train`
records (seeded per example; never the example itself). They are written as the original writes
them, with its arguments (`x_y_delimiter=""`, `inputs_prefix=""`, `targets_prefix=" Output: "`,
`example_separator="\\n\\n"`, FLAN's default `definition_separator=" Definition: "`):

    shots = "".join(inputs_i + " Output: " + targets_i + "\\n\\n")
    text  = shots + " Definition: " + <the text the shots go in front of>

and, as the original's `prune_exemplars=True, max_input_length=960`, only the leading shots whose
inputs + targets tokens (no EOS) fit in 960 minus the example's own input tokens are kept.

Formats:
  hint:   instruction = shots + " Definition: " + masked template; inputs = the prompt, stripped
          (the paper: the shots go to the hypernetwork; the original's eval tasks,
          `fewshot_hyper=True`).
  concat: instruction = ""; inputs = (shots + " Definition: " + prompt).strip() (the baseline:
          the shots are concatenated into the input).
  both:   instruction = masked template; inputs as `concat` (the original's `t0_train_{k}_shot`
          as committed, `fewshot_hyper=False`, which its HINT script trains on).
"""
import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence

from hint_jax.data import features as F
from hint_jax.data import p3, paths, vocab

SHOTS = (1, 2, 4, 5)  # the original registers these
FORMATS = ("hint", "concat", "both")
TARGETS_PREFIX = " Output: "
EXAMPLE_SEPARATOR = "\n\n"
DEFINITION_SEPARATOR = " Definition: "
MAX_INPUT_LENGTH = 960  # the original's: 1024 less 64 for separators, as FLAN
VOCAB_ENV_VAR = paths.ENV_VARS["vocab_path"]


@dataclasses.dataclass(frozen=True)
class FewShotConfig:
  """How P3 few-shot records are built.

  Attributes:
    num_shots: examples given with every example (the original: 1, 2, 4 or 5).
    fmt: "hint", "concat" or "both" (module docstring).
    max_input_length: shot pruning budget in tokens (None: keep every shot).
    seed: seed of the shot draw.
    vocab_path: SentencePiece model the budget counts with; None = $HINT_VOCAB_PATH or the
      committed default vocabulary.
    p3_config: where and how the underlying P3 records are read (its `fmt` is set from `fmt`).
  """
  num_shots: int = 2
  fmt: str = "hint"
  max_input_length: int | None = MAX_INPUT_LENGTH
  seed: int = 0
  vocab_path: str | None = None
  p3_config: p3.P3Config = dataclasses.field(default_factory=p3.P3Config)

  def __post_init__(self):
    if self.fmt not in FORMATS:
      raise ValueError(f"unknown P3 few-shot format {self.fmt!r}; available: {FORMATS}")
    if self.num_shots < 1:
      raise ValueError(f"FewShotConfig.num_shots must be >= 1, got {self.num_shots}")


def shots_text(shots: Sequence[dict]) -> str:
  """`inputs + " Output: " + targets + "\\n\\n"` of every shot, in order."""
  return "".join(s[F.INPUTS] + TARGETS_PREFIX + s[F.TARGETS] + EXAMPLE_SEPARATOR for s in shots)


def prune(shots: Sequence[dict], inputs: str, count: Callable[[str], int],
          max_input_length: int | None) -> list[dict]:
  """The leading shots whose input + target tokens fit in `max_input_length` less `inputs`'s."""
  if max_input_length is None:
    return list(shots)
  budget = max_input_length - count(inputs)
  kept, used = [], 0
  for shot in shots:
    used += count(shot[F.INPUTS]) + count(shot[F.TARGETS])
    if used > budget:
      break
    kept.append(shot)
  return kept


def format_record(record: dict, shots: Sequence[dict], fmt: str) -> dict:
  """`record` (a `p3.records` record) with `shots` placed as format `fmt` places them."""
  block = shots_text(shots) + DEFINITION_SEPARATOR
  if fmt == "hint":
    instruction, inputs = block + record[F.INSTRUCTION], record[F.INPUTS].strip()
  else:
    instruction = "" if fmt == "concat" else record[F.INSTRUCTION]
    inputs = (block + record[F.INPUTS]).strip()
  return {**record, F.INSTRUCTION: instruction, F.INPUTS: inputs}


def draw(pool: Sequence[dict], k: int, own: int | None, rng: random.Random) -> list[dict]:
  """`k` records of `pool` (fewer if it is smaller), never `pool[own]`, in drawn order."""
  size = len(pool) - (own is not None)
  picks = rng.sample(range(size), min(k, size))
  return [pool[i + (own is not None and i >= own)] for i in picks]


def _by_task(records: Iterator[dict]) -> dict[str, list[dict]]:
  out: dict[str, list[dict]] = {}
  for r in records:
    out.setdefault(r["task"], []).append(r)
  return out


def _counter(vocab_path: str | None) -> Callable[[str], int]:
  """Token count without EOS (the original counts `encode_tf` ids)."""
  voc = vocab.get_vocabulary(vocab_path or paths.setting("vocab_path"))
  return lambda text: len(voc.encode(text))


def records(split: str, cfg: FewShotConfig = FewShotConfig()) -> Iterator[dict]:
  """Yields `{instruction, inputs, targets, task}` few-shot records of `split`, template by
  template; shots come from the template's `train` records."""
  base = dataclasses.replace(cfg.p3_config, fmt="concat" if cfg.fmt == "concat" else "hint")
  train = _by_task(p3.records("train", base))
  evaluated = train if split == "train" else _by_task(p3.records(split, base))
  count = _counter(cfg.vocab_path) if cfg.max_input_length is not None else len
  for task, recs in evaluated.items():
    pool = train.get(task, [])
    for i, record in enumerate(recs):
      rng = random.Random(f"{cfg.seed}/{task}/{split}/{i}")
      shots = draw(pool, cfg.num_shots, i if split == "train" else None, rng)
      shots = prune(shots, record[F.INPUTS], count, cfg.max_input_length)
      yield format_record(record, shots, cfg.fmt)
