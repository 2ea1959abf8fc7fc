"""hint_jax.data."""
