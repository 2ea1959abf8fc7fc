"""hint_jax.t5: the T5 backbone, its config, Hugging Face interop and decoding."""
from hint_jax.t5.config import T5Config
from hint_jax.t5.decoding import decode, greedy_decode
from hint_jax.t5.hf import load_hf_t5, save_hf_t5
from hint_jax.t5.model import T5

__all__ = ["T5", "T5Config", "decode", "greedy_decode", "load_hf_t5", "save_hf_t5"]
