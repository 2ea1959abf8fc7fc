"""SeqIO mixtures: SNI + P3 training mixtures (examples-proportional, T0 cap)."""
import functools

from hint_jax_tasks import common

from hint_jax.data import p3

T0_RATE = functools.partial(common.examples_rate, cap=p3.T0_MIXING_CAP)


def register() -> None:
  """Registers `sni_p3_hint` and `sni_p3_concat` (split `train`)."""
  for fmt in ("hint", "concat"):
    common.add_mixture(f"sni_p3_{fmt}", [f"sni_def_2pos_{fmt}", f"p3_{fmt}"], default_rate=T0_RATE)


register()
