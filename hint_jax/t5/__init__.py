"""hint_jax.t5."""
