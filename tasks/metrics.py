"""SeqIO metric functions (targets, predictions) -> dict, built on hint_jax.data metrics."""
from collections.abc import Sequence

from hint_jax.data import synthetic


def exact_match(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Exact string match (surrounding whitespace ignored), x100."""
  return synthetic.exact_match(targets, predictions)
