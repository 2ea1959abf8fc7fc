"""SNI string formats: the exact Tk-Instruct input and its HINT split into instruction | inputs.

Tk-Instruct source (ni_collator.py, Def + k Pos):
  "Definition: <def>(.)\\n\\n" + k x " Positive Example i -\\nInput: <in>(.)\\n Output: <out>(.)\\n\\n"
  + "Now complete the following example -\\nInput: <input>(.)\\nOutput: "
where "(.)" is a period appended when the text does not end in punctuation. HINT gives the
definition and examples to the hypernetwork and the "Now complete ..." block to the encoder, so
`instruction + inputs` is exactly the Tk-Instruct string (HINT's `split_mimic` conversion, extended
to positive examples in their Tk-Instruct order). Unlike Tk-Instruct, examples are never dropped
to fit a token budget; the feature converter truncates and counts instead.
"""
import string

from hint_jax.data import sni_reader


def _end(text: str) -> str:
  return text if text and text[-1] in string.punctuation else text + "."


def definition_block(task: sni_reader.SniTask) -> str:
  return _end("Definition: " + task.definition.strip()) + "\n\n"


def positive_example_block(index: int, example: sni_reader.Example) -> str:
  """Block of positive example `index` (0-based), exactly as Tk-Instruct writes it."""
  text = _end(f" Positive Example {index + 1} -\nInput: {example.input.strip()}") + "\n"
  return _end(text + f" Output: {example.output.strip()}") + "\n\n"


def instruction(task: sni_reader.SniTask, num_pos: int = 0) -> str:
  """Definition plus the first `num_pos` positive examples (the hypernetwork's text)."""
  blocks = [positive_example_block(i, ex)
            for i, ex in enumerate(task.positive_examples[:num_pos])]
  return definition_block(task) + "".join(blocks)


def instance_input(text: str) -> str:
  """The "Now complete the following example" block around one instance input."""
  return _end(f"Now complete the following example -\nInput: {text.strip()}") + "\nOutput: "


def tk_instruct_input(task: sni_reader.SniTask, text: str, num_pos: int = 0) -> str:
  """The full Tk-Instruct source string (Def + `num_pos` Pos) for one instance input."""
  return instruction(task, num_pos) + instance_input(text)
