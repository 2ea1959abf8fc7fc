"""Drill 8: malformed SNI task files and task names are one-line `SniFormatError`s.

Every JSON field the reader uses is checked against its type (the schema in `parse_task`); the
error names the file, the instance (its index) and the field. Non-UTF-8 bytes and lone
surrogates are named too, and a task name cannot reach outside `tasks/`.
"""
import json

import pytest

from hint_jax.data import sni_reader

GOOD = {"Definition": ["Say hi."], "Positive Examples": [{"input": "x", "output": "hi"}],
        "Instances": [{"id": "t-1", "input": "a", "output": ["hi", "hello"]}],
        "Categories": ["Misc Stuff"], "Input_language": ["English"]}


def _with(**changes) -> dict:
  data = json.loads(json.dumps(GOOD))
  for key, value in changes.items():
    data[key.replace("_", " ") if key == "Positive_Examples" else key] = value
  return data


def _instance(**fields) -> dict:
  return _with(Instances=[{"id": "t-1", "input": "a", "output": ["hi"], **fields}])


STR = "must be a string or list of strings"
# (id, task data, the field and problem the one-line message must name)
BAD_FIELDS = [
    ("definition_null", _with(Definition=None), f"'Definition' {STR}, got null"),
    ("definition_number", _with(Definition=3), f"'Definition' {STR}, got int"),
    ("definition_list_of_numbers", _with(Definition=[1, 2]),
     f"'Definition' {STR}, got a list holding int"),
    ("positive_examples_null", _with(Positive_Examples=None),
     "'Positive Examples' must be a list, got null"),
    ("positive_examples_string", _with(Positive_Examples="x"),
     "'Positive Examples' must be a list, got str"),
    ("positive_example_not_object", _with(Positive_Examples=["x"]),
     "'Positive Examples[0]' is not an object (got str)"),
    ("positive_example_output_null", _with(Positive_Examples=[{"input": "x", "output": None}]),
     f"'Positive Examples[0].output' {STR}, got null"),
    ("instances_null", _with(Instances=None), "'Instances' must be a list, got null"),
    ("instances_object", _with(Instances={"id": "t-1"}), "'Instances' must be a list, got dict"),
    ("instance_not_object", _with(Instances=[["a", "b"]]), "'Instances[0]' is not an object"),
    ("instance_output_null", _instance(output=None), f"'Instances[0].output' {STR}, got null"),
    ("instance_output_holds_null", _instance(output=["a", None]),
     f"'Instances[0].output' {STR}, got list"),
    ("instance_output_empty", _instance(output=[]), "'Instances[0].output' is empty"),
    ("instance_input_number", _instance(input=7), f"'Instances[0].input' {STR}, got int"),
    ("instance_id_list", _instance(id=["t-1"]), "'Instances[0].id' must be a string, got list"),
    ("categories_string", _with(Categories="Misc"),
     "'Categories' must be a list of strings, got str"),
    ("categories_numbers", _with(Categories=[3]), f"'Categories' {STR}, got a list holding int"),
    ("language_string", _with(Input_language="English"),
     "'Input_language' must be a list of strings, got str"),
]


def _write(tmp_path, name: str, content) -> str:
  (tmp_path / "tasks").mkdir(exist_ok=True)
  path = tmp_path / "tasks" / f"{name}.json"
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
  return str(path)


def _one_line_error(tmp_path, name: str) -> str:
  with pytest.raises(sni_reader.SniFormatError) as info:
    sni_reader.read_task(name, tmp_path)
  message = str(info.value)
  assert "\n" not in message and isinstance(info.value, ValueError)
  return message


def test_good_file_still_reads(tmp_path):
  _write(tmp_path, "task1_ok", GOOD)
  task = sni_reader.read_task("task1_ok", tmp_path)
  assert task.category == "misc_stuff" and task.instances[0].outputs == ("hi", "hello")


@pytest.mark.parametrize("data,field", [c[1:] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS])
def test_wrong_field_type_names_file_instance_and_field(tmp_path, data, field):
  path = _write(tmp_path, "task1_bad", data)
  message = _one_line_error(tmp_path, "task1_bad")
  assert message.startswith(path + ":") and field in message, message


@pytest.mark.parametrize("where", ["Definition", "Instances[0].input", "Instances[0].output",
                                   "Positive Examples[0].input"])
def test_lone_surrogate_is_named(tmp_path, where):
  data = json.loads(json.dumps(GOOD))
  if where == "Definition":
    data["Definition"] = ["Say \ud800 hi."]
  elif where.startswith("Instances"):
    data["Instances"][0][where.split(".")[1]] = ["caf\udce9"]
  else:
    data["Positive Examples"][0]["input"] = "\udfff"
  path = _write(tmp_path, "task2_surrogate", json.dumps(data))  # ensure_ascii: "\ud800" escapes
  message = _one_line_error(tmp_path, "task2_surrogate")
  assert message.startswith(path) and f"'{where}' holds a lone surrogate" in message, message


def test_non_utf8_file_names_byte_and_line(tmp_path):
  text = json.dumps(GOOD, indent=1).replace("Say hi.", "caf\N{LATIN SMALL LETTER E WITH ACUTE}")
  raw = text.encode("latin-1")
  path = _write(tmp_path, "task3_latin1", raw)
  message = _one_line_error(tmp_path, "task3_latin1")
  byte = raw.index(b"\xe9")
  line = raw[:byte].count(b"\n") + 1
  assert message == f"{path}: not valid UTF-8 (byte {byte}, line {line})"


def test_deeply_nested_json_is_malformed_not_a_crash(tmp_path):
  path = _write(tmp_path, "task4_deep", "[" * 100_000 + "]" * 100_000)
  message = _one_line_error(tmp_path, "task4_deep")
  assert message.startswith(path) and "malformed JSON" in message


@pytest.mark.parametrize("name", ["../secret", "sub/../../secret", "/etc/passwd", "", ".hidden",
                                  "a\x00b", "..\\secret"])
def test_task_name_cannot_leave_tasks_dir(tmp_path, name):
  (tmp_path / "secret.json").write_text(json.dumps(GOOD))  # would parse if it were reached
  _write(tmp_path, "task1_ok", GOOD)
  message = _one_line_error(tmp_path, name)
  assert message.startswith(f"bad SNI task name {name!r}") and "inside tasks/" in message
