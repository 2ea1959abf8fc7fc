"""SeqIO task and mixture registrations for HINT (SNI, P3, hyper-pretraining, synthetic)."""
