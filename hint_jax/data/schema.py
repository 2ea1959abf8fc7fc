"""Helpers shared by the data readers' field-by-field checks (SNI task files, P3 records)."""


def kind(value) -> str:
  """The JSON name of `value`'s type for error messages ("null", "str", "list", ...)."""
  return "null" if value is None else type(value).__name__


def checked_str(value: str, where: str, key: str, error: type[Exception]) -> str:
  """`value` if it encodes as UTF-8 (json.loads accepts lone surrogates such as "\\ud800"),
  else `error` naming `where`, the field and the character."""
  try:
    value.encode("utf-8")
  except UnicodeEncodeError as e:
    raise error(f"{where}: field {key!r} holds a lone surrogate "
                f"({value[e.start]!r} at character {e.start})") from None
  return value
