"""SeqIO task and mixture registrations for HINT (SNI, P3, hyper-pretraining, synthetic).

Installed as `hint_jax_tasks` (setup.py maps this folder to that name, so no other `tasks` on
`sys.path` can shadow it). Importing it registers every task; the library (`hint_jax.data`)
never imports it: the entry points, benchmarks and tests do.
"""
if __name__ != "hint_jax_tasks":
  raise ImportError(f"the hint_jax task registrations are the package `hint_jax_tasks` "
                    f"(this folder, installed under that name), not {__name__!r}: "
                    f"`import hint_jax_tasks`")

# isort: split
from hint_jax_tasks import ablations, p3, pretrain, sni, synthetic  # noqa: F401

# isort: split
from hint_jax_tasks import mixtures  # noqa: F401  (after the tasks it mixes)
