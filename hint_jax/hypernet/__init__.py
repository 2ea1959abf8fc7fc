"""hint_jax.hypernet."""
