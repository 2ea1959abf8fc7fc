"""Tests of the vocabulary: T5 conventions, seqio parity, and reproducing the committed model."""
import importlib.util

import pytest

from hint_jax.data import vocab

REPO = vocab.DEFAULT_VOCAB_PATH.parents[2]


def _train_vocab_module():
  spec = importlib.util.spec_from_file_location("train_vocab", REPO / "scripts" / "train_vocab.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_script_reproduces_committed_vocab(shared_data):
  trained = _train_vocab_module().train(shared_data)
  assert trained == vocab.DEFAULT_VOCAB_PATH.read_bytes()


def test_special_ids_and_size():
  v = vocab.get_vocabulary()
  assert (v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2)
  assert v.base_vocab_size == 8000
  assert v.vocab_size == 8100
  assert v.sentinel_id(0) == 8099 and v.sentinel_id(99) == 8000
  assert v.encode("<extra_id_0>") == [8099]
  with pytest.raises(ValueError, match="sentinel 100"):
    v.sentinel_id(100)


def test_decode_stops_at_eos_and_drops_pad():
  v = vocab.get_vocabulary()
  ids = v.encode("sort the numbers")
  assert v.decode(ids) == "sort the numbers"
  assert v.decode([0] + ids + [1] + v.encode("junk")) == "sort the numbers"


def test_matches_seqio_vocabulary():
  v = vocab.get_vocabulary()
  s = vocab.get_seqio_vocabulary()
  texts = ["Definition: Reverse the words.\n\nInput: cat dog", "x <extra_id_3> y", "", "Ünïcödé 42"]
  for text in texts:
    assert v.encode(text) == list(s.encode(text))
    ids = v.encode(text) + [1, 7]
    assert v.decode(ids) == s.decode(ids)
  assert v.vocab_size == s.vocab_size


def test_bad_special_ids_rejected(tmp_path):
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  model = tmp_path / "bad"
  spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b c d e f g"] * 50),
                                 model_prefix=str(model), vocab_size=12, minloglevel=2)
  with pytest.raises(ValueError, match="expected \\(0, 1, 2\\)"):
    vocab.Vocabulary(f"{model}.model")
