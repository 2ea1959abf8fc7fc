"""SNI string formats: the published HINT inputs, the original's split_mimic ablation, Tk-Instruct.

All three are written exactly as the original code builds them (allenai/hyper-task-descriptions,
`ni_tasks/ni_registry.py` and `ni_tasks/ni_collator.py`); "(.)" below is a period appended when
the text does not end in punctuation.

* `hint` (the published HINT models, `convert_format` / `convert_format_pack_positive_examples`):
  - Def: the hypernetwork reads the bare definition, stripped (no "Definition:" prefix); the
    encoder reads the raw instance input, untouched.
  - Def + k Pos: the hypernetwork reads the positive-example blocks
    " Positive Example i -\\nInput: <in>(.)\\n Output: <out>(.)\\n" *prepended* one by one to
    "Definition: <def>" (unstripped, no period, no blank line), so they end up in reverse order
    before the definition; an example whose addition would take the text past the instruction
    budget (tokens with EOS, 1024 in the original) is skipped. The encoder reads the raw input.
* `split_mimic` (the original's `alt_raw` / `hyper_mimic_baseline` ablation, extended here to
  positive examples in Tk-Instruct order): the Tk-Instruct string cut in two, the definition and
  examples to the hypernetwork and the "Now complete the following example" block to the encoder,
  so `instruction + inputs` is exactly the Tk-Instruct string.
* `concat` (the Tk-Instruct baseline, `DataCollatorForNI`, Def + k Pos):
  "Definition: <def>(.)\\n\\n" + k x " Positive Example i -\\nInput: <in>(.)\\n Output: <out>(.)\\n\\n"
  + "Now complete the following example -\\nInput: <input>(.)\\nOutput: " as the encoder input.
  Unlike Tk-Instruct, examples are never dropped to fit a token budget; the feature converter
  truncates and counts instead.
* `both` (the original's HINT trained on its Tk-Instruct tasks, e.g. `natural_instructions_def_pos_2`
  with `convert_format`): the bare definition to the hypernetwork and the Tk-Instruct string,
  stripped, to the encoder, so the instruction reaches the model twice.
"""
import string
from collections.abc import Callable

from hint_jax.data import sni_reader


def _end(text: str) -> str:
  return text if text and text[-1] in string.punctuation else text + "."


def definition_block(task: sni_reader.SniTask) -> str:
  return _end("Definition: " + task.definition.strip()) + "\n\n"


def _example_lines(index: int, example: sni_reader.Example) -> str:
  """" Positive Example i -\\nInput: ...(.)\\n Output: ...(.)\\n" for example `index` (0-based)."""
  text = _end(f" Positive Example {index + 1} -\nInput: {example.input.strip()}") + "\n"
  return _end(text + f" Output: {example.output.strip()}") + "\n"


def positive_example_block(index: int, example: sni_reader.Example) -> str:
  """Block of positive example `index` (0-based), exactly as Tk-Instruct writes it."""
  return _example_lines(index, example) + "\n"


def instruction(task: sni_reader.SniTask, num_pos: int = 0) -> str:
  """Tk-Instruct's definition plus the first `num_pos` positive examples (split_mimic, concat)."""
  blocks = [positive_example_block(i, ex)
            for i, ex in enumerate(task.positive_examples[:num_pos])]
  return definition_block(task) + "".join(blocks)


def instance_input(text: str) -> str:
  """The "Now complete the following example" block around one instance input."""
  return _end(f"Now complete the following example -\nInput: {text.strip()}") + "\nOutput: "


def tk_instruct_input(task: sni_reader.SniTask, text: str, num_pos: int = 0) -> str:
  """The full Tk-Instruct source string (Def + `num_pos` Pos) for one instance input."""
  return instruction(task, num_pos) + instance_input(text)


def hint_instruction(task: sni_reader.SniTask, num_pos: int = 0,
                     count_tokens: Callable[[str], int] | None = None,
                     budget: int | None = None) -> str:
  """The published HINT hypernetwork text: Def (`num_pos=0`) or Def + `num_pos` Pos.

  Args:
    task: the SNI task.
    num_pos: positive examples to pack (the first `num_pos` of the task file).
    count_tokens: token count of a text as the hypernetwork sees it (EOS included); with
      `budget`, examples that would take the text past `budget` tokens are skipped.
    budget: instruction token budget (the original: 1024); None = keep every example.
  """
  if num_pos == 0:
    return task.definition.strip()
  text = "Definition: " + task.definition
  for i, example in enumerate(task.positive_examples[:num_pos]):
    block = _example_lines(i, example)
    if budget is None or count_tokens is None or count_tokens(text + block) <= budget:
      text = block + text
  return text
