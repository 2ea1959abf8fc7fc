"""hint_jax.serving."""
