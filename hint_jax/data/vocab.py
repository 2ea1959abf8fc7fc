"""SentencePiece vocabulary with T5 conventions, usable without TensorFlow (plus a seqio view)."""
import functools
import os
import pathlib
from collections.abc import Iterable, Sequence

import sentencepiece as spm
from etils import epath
from sentencepiece import sentencepiece_model_pb2

from hint_jax.data import features

DEFAULT_EXTRA_IDS = 100
DEFAULT_VOCAB_PATH = pathlib.Path(__file__).resolve().parents[1] / "assets" / "hint_sni_p3_8k.model"


def _with_sentinels(model_bytes: bytes, extra_ids: int) -> bytes:
  """Appends `<extra_id_i>` pieces in reverse order, exactly as seqio does."""
  proto = sentencepiece_model_pb2.ModelProto.FromString(model_bytes)
  for i in reversed(range(extra_ids)):
    proto.pieces.add(piece=f"▁<extra_id_{i}>", score=0.0,
                     type=sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED)
  return proto.SerializeToString()


class Vocabulary:
  """Plain SentencePiece vocabulary: pad 0, EOS 1, unk 2 and `extra_ids` sentinel ids at the end.

  Encodes and decodes exactly like `seqio.SentencePieceVocabulary(path, extra_ids)` but needs only
  the `sentencepiece` package, so serving can use it without TensorFlow.
  """

  def __init__(self, path: str | os.PathLike = DEFAULT_VOCAB_PATH,
               extra_ids: int = DEFAULT_EXTRA_IDS):
    self.path = str(path)
    self.extra_ids = extra_ids
    model_bytes = epath.Path(path).read_bytes()
    try:
      self._base_size = len(sentencepiece_model_pb2.ModelProto.FromString(model_bytes).pieces)
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError is not a ValueError)
      raise ValueError(f"vocabulary {self.path} is not a SentencePiece model ({e})") from None
    self._sp = spm.SentencePieceProcessor(model_proto=_with_sentinels(model_bytes, extra_ids))
    ids = (self._sp.pad_id(), self._sp.eos_id(), self._sp.unk_id())
    if ids != (features.PAD_ID, features.EOS_ID, features.UNK_ID):
      raise ValueError(f"vocabulary {self.path}: (pad, eos, unk) ids are {ids}, expected (0, 1, 2)")

  pad_id = features.PAD_ID
  eos_id = features.EOS_ID
  unk_id = features.UNK_ID

  @property
  def vocab_size(self) -> int:
    """Base pieces plus sentinels."""
    return self._base_size + self.extra_ids

  @property
  def base_vocab_size(self) -> int:
    return self._base_size

  def sentinel_id(self, i: int) -> int:
    """Id of `<extra_id_i>` (counted from the end, as in T5)."""
    if not 0 <= i < self.extra_ids:
      raise ValueError(f"sentinel {i} out of range [0, {self.extra_ids})")
    return self.vocab_size - 1 - i

  def encode(self, text: str) -> list[int]:
    """Token ids of `text`, without EOS."""
    return self._sp.EncodeAsIds(text)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return self._sp.EncodeAsIds(list(texts))

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids` up to the first EOS; pads are dropped, sentinels decode to `<extra_id_i>`."""
    clean = []
    for i in ids:
      i = int(i)
      if i == features.EOS_ID:
        break
      if i != features.PAD_ID:
        clean.append(i)
    return self._sp.DecodeIds(clean)


@functools.lru_cache(maxsize=8)
def get_vocabulary(path: str | None = None, extra_ids: int = DEFAULT_EXTRA_IDS) -> Vocabulary:
  """Cached `Vocabulary` (default: the committed hint_jax vocabulary)."""
  return Vocabulary(path or DEFAULT_VOCAB_PATH, extra_ids)


@functools.lru_cache(maxsize=8)
def get_seqio_vocabulary(path: str | None = None, extra_ids: int = DEFAULT_EXTRA_IDS):
  """Cached `seqio.SentencePieceVocabulary` for the same model (imports TensorFlow)."""
  import seqio  # pylint: disable=g-import-not-at-top  # keep TF out of serving imports
  return seqio.SentencePieceVocabulary(str(path or DEFAULT_VOCAB_PATH), extra_ids=extra_ids)
