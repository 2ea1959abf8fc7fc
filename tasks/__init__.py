"""SeqIO task and mixture registrations for HINT (SNI, P3, hyper-pretraining, synthetic)."""
from tasks import ablations, p3, pretrain, sni, synthetic  # noqa: F401  (registers tasks on import)

# isort: split
from tasks import mixtures  # noqa: F401  (after the tasks it mixes)
