"""Tests of the P3 readers and the masked-template instruction."""
import json

import pytest
import tensorflow as tf

from hint_jax.data import p3

PROMPTS = [
    "Title: Great phone\nReview: Works well for me and my kids.\nIs this review negative?",
    "Title: Broken\nReview: Stopped after a day.\nIs this review negative?",
    "Title: Meh\nReview: It is fine I guess, nothing special.\nIs this review negative?",
]


def test_masked_template_replaces_fields():
  assert p3.masked_template(PROMPTS) == "Title: [MASK]\nReview: [MASK]\nIs this review negative?"
  assert p3.masked_template(PROMPTS[:1]) == PROMPTS[0]


def _write_templates(tmp_path, records_by_template):
  (tmp_path / "templates").mkdir()
  for name, recs in records_by_template.items():
    (tmp_path / "templates" / f"{name}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in recs) + "\n")


def test_records_hint_and_concat_and_splits(tmp_path):
  recs = [{"template": "amz_neg", "inputs": p, "targets": t + " "}
          for p, t in zip(PROMPTS * 2, ["No", "Yes", "No", "No", "Yes", "No"])]
  _write_templates(tmp_path, {"amz_neg": recs})
  cfg = p3.P3Config(p3_dir=tmp_path, validation_per_template=2, t0_train_only=False)
  train = list(p3.records("train", cfg))
  valid = list(p3.records("validation", cfg))
  assert [r["inputs"] for r in train + valid] == [r["inputs"] for r in recs]
  assert train[0] == {"instruction": "Title: [MASK]\nReview: [MASK]\nIs this review negative?",
                      "inputs": PROMPTS[0], "targets": "No", "task": "amz_neg"}
  concat = list(p3.records("train", p3.P3Config(p3_dir=tmp_path, fmt="concat",
                                                validation_per_template=2, t0_train_only=False)))
  assert concat[0]["instruction"] == "" and concat[0]["inputs"] == PROMPTS[0]
  capped = list(p3.records("train", p3.P3Config(p3_dir=tmp_path, cap=2,
                                                validation_per_template=2, t0_train_only=False)))
  assert len(capped) == 2


def test_malformed_line_names_file_and_line(tmp_path):
  (tmp_path / "templates").mkdir()
  path = tmp_path / "templates" / "bad.jsonl"
  path.write_text('{"inputs": "a", "targets": "b"}\n{"inputs": "a"}\n')
  with pytest.raises(p3.P3FormatError, match=f"{path}:2: missing field 'targets'"):
    list(p3.records("train", p3.P3Config(p3_dir=tmp_path, validation_per_template=0,
                                         t0_train_only=False)))
  path.write_text('{"inputs": \n')
  with pytest.raises(p3.P3FormatError, match=f"{path}:1: malformed JSON"):
    p3.read_jsonl(path)
  with pytest.raises(p3.P3FormatError, match="no P3 template files"):
    list(p3.records("train", p3.P3Config(p3_dir=tmp_path / "nowhere")))


def _write_tfrecord(path, prompts, targets, choices=None):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for prompt, target in zip(prompts, targets):
      feats = {"inputs_pretokenized": [prompt.encode()], "targets_pretokenized": [target.encode()]}
      if choices:
        feats["answer_choices"] = [c.encode() for c in choices]
      example = tf.train.Example(features=tf.train.Features(feature={
          k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)) for k, v in feats.items()}))
      if choices:
        example.features.feature["is_correct"].int64_list.value.append(1)
      writer.write(example.SerializeToString())


def test_read_tfrecord_with_answer_choices(tmp_path):
  _write_tfrecord(tmp_path / "p3.tfrecord", ["Is it? "], ["yes\n"], ["yes", "no"])
  assert p3.read_tfrecord(str(tmp_path / "p3.tfrecord")) == [
      {"inputs": "Is it? ", "targets": "yes", "answer_choices": ["yes", "no"], "is_correct": True}]


def test_records_from_p3_tfrecord_layout(tmp_path):
  (tmp_path / "amz_neg").mkdir()
  _write_tfrecord(tmp_path / "amz_neg" / "train.tfrecord-00000-of-00001", PROMPTS, ["a", "b", "c"])
  _write_tfrecord(tmp_path / "amz_neg" / "validation.tfrecord-00000-of-00001", PROMPTS[:1], ["a"])
  cfg = p3.P3Config(tfrecord_dir=tmp_path, t0_train_only=False)
  train = list(p3.records("train", cfg))
  assert [r["targets"] for r in train] == ["a", "b", "c"]
  assert train[0]["instruction"] == "Title: [MASK]\nReview: [MASK]\nIs this review negative?"
  assert len(list(p3.records("validation", cfg))) == 1


def test_shared_sample_templates(shared_data):
  cfg = p3.P3Config(p3_dir=shared_data / "p3_sample")
  files = p3.template_files(cfg)
  assert len(files) == 294
  first = next(p3.records("validation", cfg))
  assert first["task"] == "adversarial_qa_dbert_answer_the_following_q"
  assert "[MASK]" in first["instruction"] and "answer the following question" in first[
      "instruction"]
