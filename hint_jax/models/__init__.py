"""hint_jax.models."""
