"""hint_jax.t5: the T5 backbone, its config, Hugging Face interop and decoding."""
from hint_jax.t5.config import T5Config
from hint_jax.t5.model import T5

__all__ = ["T5", "T5Config"]
