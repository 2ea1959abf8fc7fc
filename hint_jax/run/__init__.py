"""hint_jax.run."""
