"""hint_jax.training."""
