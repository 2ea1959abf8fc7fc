"""Tokenise texts and pad them into fixed length and batch buckets (so jit never recompiles)."""
from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from hint_jax.data import features


def bucket(n: int, buckets: Sequence[int]) -> int:
  """The smallest bucket >= n; the largest bucket when n exceeds all of them."""
  if not buckets:
    raise ValueError("bucket: empty bucket list")
  ordered = sorted(buckets)
  i = bisect.bisect_left(ordered, n)
  return ordered[min(i, len(ordered) - 1)]


def tokenize(vocab, texts: Sequence[str], max_len: int) -> list[list[int]]:
  """Token ids with the vocabulary's EOS appended (WordPiece: [SEP]), truncated to `max_len`
  (EOS kept as the last token)."""
  out, eos = [], getattr(vocab, "eos_id", features.EOS_ID)
  for ids in vocab.encode_batch(list(texts)):
    ids = list(ids)[:max_len - 1] + [eos]
    out.append(ids)
  return out


def pad(seqs: Sequence[Sequence[int]], length: int, rows: int | None = None) -> np.ndarray:
  """[rows, length] int32, zero padded (rows default: len(seqs)); extra rows are all padding."""
  rows = len(seqs) if rows is None else rows
  out = np.zeros((rows, length), np.int32)
  for i, seq in enumerate(seqs):
    seq = list(seq)[:length]
    out[i, :len(seq)] = seq
  return out


def pad_to_bucket(seqs: Sequence[Sequence[int]], length_buckets: Sequence[int],
                  rows: int | None = None) -> np.ndarray:
  """`pad` to the bucket of the longest sequence."""
  longest = max((len(s) for s in seqs), default=1)
  return pad(seqs, bucket(longest, length_buckets), rows)


def shift_right(targets_BT: np.ndarray) -> np.ndarray:
  """Decoder inputs: targets shifted right with start id 0 (padding stays 0)."""
  out = np.zeros_like(targets_BT)
  out[:, 1:] = targets_BT[:, :-1]
  return out


def shift_right_jnp(targets_BT):
  """`shift_right` inside jit (jax arrays)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp.pad(targets_BT[:, :-1], ((0, 0), (1, 0)))


def chunks(n: int, size: int) -> list[tuple[int, int]]:
  """[(start, stop)] covering range(n) in pieces of at most `size`."""
  return [(s, min(s + size, n)) for s in range(0, n, size)]
