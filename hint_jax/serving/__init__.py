"""hint_jax.serving: `Predictor` (cached TaskParams, mixed-task batches), export and CLI functions."""


def __getattr__(name: str):
  # Lazy, so `import hint_jax.serving.cache` does not build the model stack.
  if name == "Predictor":
    from hint_jax.serving.predictor import Predictor
    return Predictor
  raise AttributeError(f"module 'hint_jax.serving' has no attribute {name!r}")
