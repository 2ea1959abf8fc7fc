"""hint_jax.layers."""
