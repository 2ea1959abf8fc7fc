"""Feature converters: tokenized task examples -> HINT or concatenation-baseline model batches.

Task examples carry `instruction`, `inputs` and `targets` token arrays (each ending in EOS).
`TASK_FEATURE_LENGTHS` (T5X style) gives their maximal lengths: `instruction` -> I, `inputs` -> L,
`targets` -> T. An over-long sequence is cut to its length with EOS kept as the last token, and
each cut is counted in `ConvertStats` (never silent). An empty instruction (EOS only) is valid.

HINT batches hold a per-batch table of the unique instructions (`hyper_encoder_input_tokens`
[rows, I], padded rows all zeros) and `task_index` [B] pointing each example at its row, so the
hypernetwork runs once per unique task in the batch.
"""
import collections
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from hint_jax.data import features as F

Example = Mapping[str, np.ndarray]
Batch = dict[str, np.ndarray]
TASK_FEATURES = (F.INSTRUCTION, F.INPUTS, F.TARGETS)


@dataclasses.dataclass
class ConvertStats:
  """How many sequences of each task feature were truncated, and how many examples were seen."""
  truncated: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  examples: int = 0

  def update(self, other: "ConvertStats") -> None:
    self.truncated.update(other.truncated)
    self.examples += other.examples


def _check_lengths(lengths: Mapping[str, int], needed: Sequence[str]) -> None:
  missing = [k for k in needed if k not in lengths]
  if missing:
    raise KeyError(f"task_feature_lengths lacks {missing}; got {dict(lengths)}")


def fit(tokens: np.ndarray, length: int, stats: ConvertStats, name: str) -> np.ndarray:
  """Cuts `tokens` to `length` keeping their closing token last (the EOS every pipeline appends:
  SentencePiece's 1, WordPiece's [SEP]), counting the cut, and pads with zeros."""
  tokens = np.asarray(tokens, np.int32)
  out = np.zeros([length], np.int32)
  if len(tokens) > length:
    stats.truncated[name] += 1
    tokens = np.concatenate([tokens[:length - 1], tokens[-1:]]).astype(np.int32)
  out[:len(tokens)] = tokens
  return out


def _decoder_features(targets: Sequence[np.ndarray], length: int, stats: ConvertStats) -> Batch:
  target_BT = np.stack([fit(t, length, stats, F.TARGETS) for t in targets])
  input_BT = np.zeros_like(target_BT)
  input_BT[:, 1:] = target_BT[:, :-1]  # shifted right; start id 0
  return {F.DECODER_TARGET_TOKENS: target_BT, F.DECODER_INPUT_TOKENS: input_BT,
          F.DECODER_LOSS_WEIGHTS: (target_BT != F.PAD_ID).astype(np.float32)}


def instruction_table(instructions: Sequence[np.ndarray], num_rows: int
                      ) -> tuple[np.ndarray, np.ndarray]:
  """De-duplicates fitted instructions into a [num_rows, I] table and a [B] row index.

  Args:
    instructions: B arrays of equal length I (already fitted).
    num_rows: static number of table rows; rows past the unique count stay all zeros.

  Returns:
    (table [num_rows, I], index [B]) with `table[index[b]] == instructions[b]`.
  """
  rows: dict[bytes, int] = {}
  index_B = np.zeros([len(instructions)], np.int32)
  for b, tokens in enumerate(instructions):
    index_B[b] = rows.setdefault(tokens.tobytes(), len(rows))
  if len(rows) > num_rows:
    raise ValueError(f"batch has {len(rows)} unique instructions but the table has only "
                     f"{num_rows} rows; raise num_task_rows")
  length = len(instructions[0]) if len(instructions) else 0
  table_RI = np.zeros([num_rows, length], np.int32)
  for key, row in rows.items():
    table_RI[row] = np.frombuffer(key, np.int32)
  return table_RI, index_B


def hint_batch(examples: Sequence[Example], lengths: Mapping[str, int],
               num_task_rows: int | None = None) -> tuple[Batch, ConvertStats]:
  """Builds a HINT batch: instruction table for the hypernetwork, raw inputs for the encoder.

  Args:
    examples: B tokenized examples with `instruction`, `inputs`, `targets`.
    lengths: `TASK_FEATURE_LENGTHS` with keys `instruction`, `inputs`, `targets`.
    num_task_rows: static table size (default: B).

  Returns:
    The batch (hyper_encoder_input_tokens [rows, I], task_index [B], encoder_input_tokens [B, L],
    decoder_input_tokens / decoder_target_tokens / decoder_loss_weights [B, T]) and the stats.
  """
  _check_lengths(lengths, TASK_FEATURES)
  stats = ConvertStats(examples=len(examples))
  instr = [fit(ex[F.INSTRUCTION], lengths[F.INSTRUCTION], stats, F.INSTRUCTION)
           for ex in examples]
  table_RI, index_B = instruction_table(instr, num_task_rows or len(examples))
  batch = {F.HYPER_ENCODER_INPUT_TOKENS: table_RI, F.TASK_INDEX: index_B,
           F.ENCODER_INPUT_TOKENS: np.stack([fit(ex[F.INPUTS], lengths[F.INPUTS], stats, F.INPUTS)
                                             for ex in examples])}
  batch.update(_decoder_features([ex[F.TARGETS] for ex in examples], lengths[F.TARGETS], stats))
  return batch, stats


def concat_tokens(instruction: np.ndarray, inputs: np.ndarray) -> np.ndarray:
  """Instruction (without its EOS) followed by the inputs; an empty instruction adds nothing."""
  instruction = np.asarray(instruction, np.int32)
  if len(instruction) and instruction[-1] == F.EOS_ID:
    instruction = instruction[:-1]
  return np.concatenate([instruction, np.asarray(inputs, np.int32)])


def concat_batch(examples: Sequence[Example], lengths: Mapping[str, int]
                 ) -> tuple[Batch, ConvertStats]:
  """Builds a concatenation-baseline batch (no hypernetwork features).

  Args:
    examples: B tokenized examples; `instruction` is optional (absent or EOS-only = none).
    lengths: `TASK_FEATURE_LENGTHS` with keys `inputs` and `targets`; the instruction shares the
      `inputs` length, as in Tk-Instruct.

  Returns:
    The batch (encoder_input_tokens [B, L] and the decoder features [B, T]) and the stats.
  """
  _check_lengths(lengths, (F.INPUTS, F.TARGETS))
  stats = ConvertStats(examples=len(examples))
  enc = [concat_tokens(ex.get(F.INSTRUCTION, np.zeros([0], np.int32)), ex[F.INPUTS])
         for ex in examples]
  batch = {F.ENCODER_INPUT_TOKENS: np.stack([fit(e, lengths[F.INPUTS], stats, F.INPUTS)
                                             for e in enc])}
  batch.update(_decoder_features([ex[F.TARGETS] for ex in examples], lengths[F.TARGETS], stats))
  return batch, stats


CONVERTERS = {"hint": hint_batch, "concat": concat_batch}


def convert(kind: str, examples: Sequence[Example], lengths: Mapping[str, int],
            num_task_rows: int | None = None) -> tuple[Batch, ConvertStats]:
  """Dispatches to `hint_batch` (kind "hint") or `concat_batch` (kind "concat")."""
  if kind == "hint":
    return hint_batch(examples, lengths, num_task_rows)
  if kind == "concat":
    return concat_batch(examples, lengths)
  raise ValueError(f"unknown converter {kind!r}; available: {', '.join(CONVERTERS)}")
