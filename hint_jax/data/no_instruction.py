"""The no-instruction ablation, data side: one constant instruction for every task.

The original (`scripts/nat_int/ni_train_no_hnet.sh`: `HyperT5Config.use_instructions=False`,
`use_fusion_in_decoder=False`, task `natural_instructions_def_pos_2`) skips the instruction
encoder and the pooling attention: its generator MLPs read the learned component-embedding table
directly, so one set of adapters and prefixes, learned but the same for every task, is inserted
into a T5 whose input is the Tk-Instruct string.

Here the model is unchanged: every record's hypernetwork text is `NO_INSTRUCTION`, so the
hypernetwork also generates one shared set of modules (a learned function of the component table
and of the constant's encoding), while the encoder reads the same input as the original (`both`
SNI records: the Tk-Instruct string). Run it with fusion off (`runs/finetune_sni_no_instruction.gin`).
The difference: the original's generator input is the free table row, ours is that row's
attention pooling over the constant's token encodings, i.e. per head a convex mix of its
len(tokens) value vectors. A one-token constant would give every row of a component the same
pooled vector (one key: attention weight 1 for every query), so the constant has several tokens.
"""
from collections.abc import Iterable, Iterator

from hint_jax.data import features as F

NO_INSTRUCTION = ("No instruction is given for this task: read the input and write the output "
                  "it asks for.")


def records(base: Iterable[dict]) -> Iterator[dict]:
  """`base` records with the hypernetwork text replaced by `NO_INSTRUCTION`."""
  for record in base:
    yield {**record, F.INSTRUCTION: NO_INSTRUCTION}
