"""hint_jax.evaluation: reports, instruction-reliance controls, rank classification, FLOPs."""
