"""SeqIO registration of `hyper_pretrain_text`: text split into instruction | inputs | targets.

Text source, first that applies (`paths.DataSettings`, gin-bindable, $HINT_* by default):
`pretrain_tfds` / $HINT_PRETRAIN_TFDS (e.g. `c4/en:3.1.0`, at most `pretrain_max_docs` documents,
default 100000), else `<data_dir>/pretrain_text/*.txt`, else the shared SNI and P3 texts. Chunk
length `pretrain_chunk` / $HINT_PRETRAIN_CHUNK (default 512 tokens).
Splits `train` and `validation` (every 100th chunk).
"""
import itertools

import seqio
from hint_jax_tasks import common

from hint_jax.data import paths, pretrain


def _texts():
  name = paths.setting("pretrain_tfds")
  if not name:
    return pretrain.offline_corpus()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  limit = paths.setting("pretrain_max_docs")
  docs = tfds.load(name, split="train", shuffle_files=False).as_numpy_iterator()
  return (d["text"].decode("utf-8") for d in itertools.islice(docs, limit))


def _records(split: str):
  cfg = pretrain.PretrainConfig(chunk_length=paths.setting("pretrain_chunk"))
  return pretrain.records(_texts(), common.vocabulary().encode, split, cfg)


def register() -> None:
  """Registers `hyper_pretrain_text` (features are token ids already; only EOS is appended)."""
  common.add_task("hyper_pretrain_text",
                  common.function_source(_records, ("train", "validation")),
                  preprocessors=[seqio.preprocessors.append_eos])


register()
