"""SeqIO registration of `hyper_pretrain_text`: text split into instruction | inputs | targets.

Text source, first that applies: $HINT_PRETRAIN_TFDS (e.g. `c4/en:3.1.0`, at most
$HINT_PRETRAIN_MAX_DOCS documents, default 100000), else `$HINT_DATA_DIR/pretrain_text/*.txt`,
else the shared SNI and P3 texts. Chunk length $HINT_PRETRAIN_CHUNK (default 512 tokens).
Splits `train` and `validation` (every 100th chunk).
"""
import itertools
import os

import seqio

from hint_jax.data import pretrain
from tasks import common


def _texts():
  name = os.environ.get("HINT_PRETRAIN_TFDS")
  if not name:
    return pretrain.offline_corpus()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  limit = int(os.environ.get("HINT_PRETRAIN_MAX_DOCS", "100000"))
  docs = tfds.load(name, split="train", shuffle_files=False).as_numpy_iterator()
  return (d["text"].decode("utf-8") for d in itertools.islice(docs, limit))


def _records(split: str):
  cfg = pretrain.PretrainConfig(chunk_length=int(os.environ.get("HINT_PRETRAIN_CHUNK", "512")))
  return pretrain.records(_texts(), common.vocabulary().encode, split, cfg)


def register() -> None:
  """Registers `hyper_pretrain_text` (features are token ids already; only EOS is appended)."""
  common.add_task("hyper_pretrain_text",
                  common.function_source(_records, ("train", "validation")),
                  preprocessors=[seqio.preprocessors.append_eos])


register()
