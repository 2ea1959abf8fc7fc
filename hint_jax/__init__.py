"""HINT (Hypernetwork INstruction Tuning) in JAX/Flax."""

__version__ = "0.1.0"
