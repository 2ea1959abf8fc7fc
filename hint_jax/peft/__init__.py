"""hint_jax.peft."""
