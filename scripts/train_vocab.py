"""Trains the default hint_jax SentencePiece vocabulary from the shared SNI and P3 text.

Deterministic: a fixed, sorted subset of the text, one training thread, fixed parameters. The
committed `hint_jax/assets/hint_sni_p3_8k.model` is the output of

    .venv/bin/python scripts/train_vocab.py --out hint_jax/assets/hint_sni_p3_8k.model

and `tests/data/vocab_test.py` re-runs it and checks that the pieces are identical.
T5 conventions: pad 0, EOS 1, unk 2, no BOS; 100 sentinels are added at load time (extra_ids).
"""
import argparse
import io
import json
import os
import pathlib
import sys

import sentencepiece as spm

VOCAB_SIZE = 8000
SNI_INSTANCES_PER_TASK = 20
P3_LINES_PER_TEMPLATE = 6
MAX_LINE_CHARS = 2000

_TRAINER_ARGS = {
    "vocab_size": VOCAB_SIZE, "model_type": "unigram", "character_coverage": 0.9995,
    "pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1, "num_threads": 1, "input_sentence_size": 0,
    "shuffle_input_sentence": False, "seed_sentencepiece_size": 200000, "max_sentence_length": 4192,
    "split_digits": False, "byte_fallback": False, "train_extremely_large_corpus": False,
    "minloglevel": 2}


def _default_data_dir() -> pathlib.Path:
  env = os.environ.get("HINT_DATA_DIR")
  return pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[2] / "shared/data"


def _lines(text: str) -> list[str]:
  return [ln.strip()[:MAX_LINE_CHARS] for ln in text.split("\n") if ln.strip()]


def corpus_lines(data_dir: pathlib.Path) -> list[str]:
  """Returns the deterministic training text: SNI definitions/examples/instances and P3 prompts."""
  out = []
  for path in sorted((data_dir / "sni" / "tasks").glob("*.json")):
    task = json.loads(path.read_text(encoding="utf-8"))
    definition = task["Definition"]
    out += _lines(definition if isinstance(definition, str) else " ".join(definition))
    for ex in task.get("Positive Examples", []):
      out += _lines(ex["input"]) + _lines(ex["output"])
    for inst in task["Instances"][:SNI_INSTANCES_PER_TASK]:
      out += _lines(inst["input"]) + _lines(inst["output"][0])
  for path in sorted((data_dir / "p3_sample" / "templates").glob("*.jsonl")):
    with path.open(encoding="utf-8") as f:
      for i, line in enumerate(f):
        if i >= P3_LINES_PER_TEMPLATE:
          break
        record = json.loads(line)
        out += _lines(record["inputs"]) + _lines(record["targets"])
  return out


def train(data_dir: pathlib.Path) -> bytes:
  """Trains the vocabulary and returns the serialized SentencePiece model."""
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(corpus_lines(data_dir)), model_writer=model, **_TRAINER_ARGS)
  return model.getvalue()


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", type=pathlib.Path, default=_default_data_dir())
  parser.add_argument("--out", type=pathlib.Path, required=True)
  args = parser.parse_args(argv)
  args.out.write_bytes(train(args.data_dir))
  print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
  main(sys.argv[1:])
