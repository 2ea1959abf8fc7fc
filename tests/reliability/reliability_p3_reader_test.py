"""Drill 12: malformed P3 records and template names are one-line `P3FormatError`s.

Every field of a p3_sample line is checked against its type (`p3.check_record`); the error names
the file, the line and the field. Non-UTF-8 bytes, lone surrogates, lines that are not JSON and
damaged tfrecords are named too, and a template or split name cannot reach outside the P3 data
directory. The real sample still reads unchanged.
"""
import json
import pathlib

import pytest

from hint_jax.data import p3

SHARED_P3 = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "p3_sample"
GOOD = {"template": "ag_news_classify", "inputs": "Some news.\nWhat label fits?",
        "targets": "Business"}
STR = "must be a string"


def _with(**changes) -> str:
  record = {**GOOD, **changes}
  return json.dumps({k: v for k, v in record.items() if v is not _DROP})


_DROP = object()
# (id, the second line of the file, the field and problem the one-line message must name)
BAD_LINES = [
    ("inputs_null", _with(inputs=None), f"field 'inputs' {STR}, got null"),
    ("inputs_number", _with(inputs=3), f"field 'inputs' {STR}, got int"),
    ("inputs_list", _with(inputs=["a", "b"]), f"field 'inputs' {STR}, got list"),
    ("inputs_blank", _with(inputs=" \n"), "field 'inputs' is empty"),
    ("inputs_missing", _with(inputs=_DROP), "missing field 'inputs'"),
    ("targets_null", _with(targets=None), f"field 'targets' {STR}, got null"),
    ("targets_object", _with(targets={"text": "x"}), f"field 'targets' {STR}, got dict"),
    ("targets_bool", _with(targets=True), f"field 'targets' {STR}, got bool"),
    ("targets_missing", _with(targets=_DROP), "missing field 'targets'"),
    ("targets_nan", _with(targets=_DROP)[:-1] + ', "targets": NaN}',
     f"field 'targets' {STR}, got float"),
    ("template_null", _with(template=None), f"field 'template' {STR}, got null"),
    ("template_number", _with(template=12), f"field 'template' {STR}, got int"),
    ("answer_choices_string", _with(answer_choices="yes"),
     "field 'answer_choices' must be a list of strings, got str"),
    ("answer_choices_null", _with(answer_choices=None),
     "field 'answer_choices' must be a list of strings, got null"),
    ("answer_choices_holding_null", _with(answer_choices=["yes", None]),
     "field 'answer_choices' must be a list of strings, got a list holding null"),
    ("is_correct_string", _with(is_correct="true"),
     "field 'is_correct' must be a boolean, got str"),
    ("record_is_list", json.dumps(["a", "b"]), "a record must be a JSON object, got list"),
    ("record_is_string", json.dumps("inputs"), "a record must be a JSON object, got str"),
    ("record_is_null", "null", "a record must be a JSON object, got null"),
    ("truncated_json", _with()[:-5], "malformed JSON"),
    ("two_records_on_one_line", _with() + _with(), "malformed JSON: Extra data"),
    ("single_quotes", str(GOOD), "malformed JSON"),
    ("nested_100000_deep", "[" * 100_000 + "]" * 100_000, "malformed JSON"),
]


def _write(root: pathlib.Path, name: str, content) -> str:
  (root / "templates").mkdir(parents=True, exist_ok=True)
  path = root / "templates" / f"{name}.jsonl"
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content, encoding="utf-8")
  return str(path)


def _one_line_error(call) -> str:
  with pytest.raises(p3.P3FormatError) as info:
    call()
  message = str(info.value)
  assert "\n" not in message and isinstance(info.value, ValueError)
  return message


def _all_records(root):
  cfg = p3.P3Config(p3_dir=root, validation_per_template=0, t0_train_only=False)
  return list(p3.records("train", cfg))


def test_good_file_still_reads(tmp_path):
  _write(tmp_path, "ag_news_classify", _with() + "\n" + _with(targets="") + "\n")
  records = p3.read_template("ag_news_classify", tmp_path)
  assert records == [GOOD, {**GOOD, "targets": ""}]  # P3 has empty answers


@pytest.mark.parametrize("line,field", [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES])
def test_bad_line_names_file_line_and_field(tmp_path, line, field):
  path = _write(tmp_path, "bad", _with() + "\n\n" + line + "\n")
  message = _one_line_error(lambda: _all_records(tmp_path))
  assert message.startswith(f"{path}:3: ") and field in message, message


@pytest.mark.parametrize("field", ["inputs", "targets", "template"])
def test_lone_surrogate_is_named(tmp_path, field):
  line = _with(**{field: "caf\udce9"})  # ensure_ascii: written as the escape "\udce9"
  path = _write(tmp_path, "surrogate", line + "\n")
  message = _one_line_error(lambda: p3.read_jsonl(pathlib.Path(path)))
  assert message.startswith(f"{path}:1: field '{field}' holds a lone surrogate"), message


def test_lone_surrogate_in_answer_choice_is_named(tmp_path):
  path = _write(tmp_path, "surrogate", _with(answer_choices=["ok", "\ud800"]) + "\n")
  message = _one_line_error(lambda: p3.read_jsonl(pathlib.Path(path)))
  assert message.startswith(f"{path}:1: field 'answer_choices[1]' holds a lone surrogate")


def test_non_utf8_file_names_line_and_byte(tmp_path):
  bad = json.dumps({**GOOD, "inputs": "caf\N{LATIN SMALL LETTER E WITH ACUTE} news"},
                   ensure_ascii=False)
  text = _with() + "\n" + bad + "\n"
  raw = text.encode("latin-1")
  path = _write(tmp_path, "latin1", raw)
  byte = raw.index(b"\xe9")
  message = _one_line_error(lambda: _all_records(tmp_path))
  assert message == f"{path}:2: not valid UTF-8 (byte {byte})"


@pytest.mark.parametrize("name", ["../secret", "sub/../../secret", "/etc/passwd", "", ".hidden",
                                  "a\x00b", "..\\secret", None])
def test_template_name_cannot_leave_templates_dir(tmp_path, name):
  (tmp_path / "secret.jsonl").write_text(_with() + "\n")  # would parse if it were reached
  _write(tmp_path / "p3", "ok", _with() + "\n")
  message = _one_line_error(lambda: p3.read_template(name, tmp_path / "p3"))
  assert message.startswith(f"bad P3 template name {name!r}") and "no path separators" in message


def test_unknown_template_names_the_missing_file(tmp_path):
  _write(tmp_path, "ok", _with() + "\n")
  message = _one_line_error(lambda: p3.read_template("nope", tmp_path))
  assert message == f"unknown P3 template 'nope': no file {tmp_path / 'templates' / 'nope.jsonl'}"


@pytest.mark.parametrize("split", ["../train", "/etc/passwd", "", "a/b"])
def test_tfrecord_split_cannot_leave_task_dirs(tmp_path, split):
  (tmp_path / "ag_news_classify").mkdir()
  cfg = p3.P3Config(tfrecord_dir=tmp_path, t0_train_only=False)
  message = _one_line_error(lambda: list(p3.records(split, cfg)))
  assert message.startswith(f"bad P3 split name {split!r}")


def _tfrecord(path: pathlib.Path, features: dict) -> str:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  with tf.io.TFRecordWriter(str(path)) as writer:
    example = tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)) for k, v in features.items()}))
    writer.write(example.SerializeToString())
  return str(path)


def test_tfrecord_missing_feature_is_named(tmp_path):
  path = _tfrecord(tmp_path / "train.tfrecord", {"inputs_pretokenized": [b"Is it?"]})
  message = _one_line_error(lambda: p3.read_tfrecord(path))
  assert message.startswith(f"{path}: record 0: ") and "targets_pretokenized" in message, message


def test_tfrecord_non_utf8_text_is_named(tmp_path):
  path = _tfrecord(tmp_path / "train.tfrecord", {"inputs_pretokenized": [b"caf\xe9"],
                                                  "targets_pretokenized": [b"yes"]})
  message = _one_line_error(lambda: p3.read_tfrecord(path))
  assert message == f"{path}: record 0: feature 'inputs_pretokenized' is not valid UTF-8 (byte 3)"


def test_damaged_tfrecord_is_named(tmp_path):
  path = _tfrecord(tmp_path / "train.tfrecord", {"inputs_pretokenized": [b"a"],
                                                  "targets_pretokenized": [b"b"]})
  raw = pathlib.Path(path).read_bytes()
  pathlib.Path(path).write_bytes(raw[:-7])  # truncated mid-record
  message = _one_line_error(lambda: p3.read_tfrecord(path))
  assert message.startswith(f"{path}: record 0: "), message


def test_real_sample_reads_unchanged():
  """Every line of every real template file reads back as exactly the JSON it holds."""
  files = sorted((SHARED_P3 / "templates").glob("*.jsonl"))
  assert len(files) == 294
  count = 0
  for path in files:
    records = p3.read_template(path.stem, SHARED_P3)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    assert records == lines, path.name
    count += len(records)
  assert count == 13_898
