"""gin files of hint_jax (models/, runs/, mesh/), installed as the package `hint_jax_gin_configs`
so that `hint-jax` finds them in a non-editable install (`run/gin_utils.py`)."""
