"""Hyper-pretraining records: token chunks split at two random points into instruction|inputs|targets.

Text (C4 through TFDS on real runs, plain text files offline) is tokenized into one stream,
chunked to `chunk_length` tokens, and every chunk is cut at two independent uniform draws
(a deliberate fix: the original code drew the second point relative to the first). Each chunk's
draws come from its own seeded RNG, so the records do not depend on reading order.
"""
import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
from etils import epath

from hint_jax.data import features as F
from hint_jax.data import paths


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """Attributes:
    chunk_length: tokens per chunk before splitting (512 in the paper).
    seed: seed of the split points.
    validation_every: every n-th chunk goes to `validation`, the rest to `train`.
  """
  chunk_length: int = 512
  seed: int = 0
  validation_every: int = 100


def split_points(length: int, seed: int, chunk_index: int) -> tuple[int, int]:
  """Two independent uniform cut points in [1, length - 1], sorted (equal -> empty inputs)."""
  rng = np.random.default_rng([seed, chunk_index])
  a, b = sorted(int(x) for x in rng.integers(1, length, size=2))
  return a, b


def chunks(token_docs: Iterable[Sequence[int]], chunk_length: int) -> Iterator[np.ndarray]:
  """Packs documents (EOS-separated) into chunks of `chunk_length` tokens; drops the remainder."""
  buffer: list[int] = []
  for doc in token_docs:
    buffer.extend(doc)
    buffer.append(F.EOS_ID)
    while len(buffer) >= chunk_length:
      yield np.asarray(buffer[:chunk_length], np.int32)
      buffer = buffer[chunk_length:]


def records(texts: Iterable[str], encode: Callable[[str], list[int]], split: str,
            cfg: PretrainConfig = PretrainConfig()) -> Iterator[dict]:
  """Yields `{instruction, inputs, targets}` token lists (no EOS yet) for `split`."""
  if split not in ("train", "validation"):
    raise ValueError(f"unknown pretraining split {split!r}; available: ('train', 'validation')")
  for i, chunk in enumerate(chunks((encode(t) for t in texts), cfg.chunk_length)):
    if (i % cfg.validation_every == 0) != (split == "validation"):
      continue
    a, b = split_points(len(chunk), cfg.seed, i)
    yield {F.INSTRUCTION: chunk[:a].tolist(), F.INPUTS: chunk[a:b].tolist(),
           F.TARGETS: chunk[b:].tolist()}


def text_files(pattern: str) -> Iterator[str]:
  """Lines of every file matching `pattern` (local or gs://), files in sorted order."""
  base = epath.Path(os.path.dirname(pattern) or ".")
  for path in sorted(base.glob(os.path.basename(pattern))):
    for line in path.read_text(encoding="utf-8").split("\n"):
      if line.strip():
        yield line


def offline_corpus(data_dir: str | os.PathLike | None = None) -> Iterator[str]:
  """Offline default text: `<data>/pretrain_text/*.txt` if present, else SNI and P3 texts."""
  root = paths.data_dir(data_dir)
  if list((root / "pretrain_text").glob("*.txt")):
    yield from text_files(str(root / "pretrain_text" / "*.txt"))
    return
  from hint_jax.data import p3, sni_reader  # pylint: disable=g-import-not-at-top
  for name in sorted(p.stem for p in (root / "sni" / "tasks").glob("*.json")):
    task = sni_reader.read_task(name, root / "sni")
    yield task.definition
    yield from (inst.input for inst in task.instances)
  for path in p3.template_files(p3.P3Config(p3_dir=root / "p3_sample")):
    yield from (r["inputs"] + " " + r["targets"] for r in p3.read_jsonl(path))
