"""hint_jax.parallel."""
