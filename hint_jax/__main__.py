"""`python -m hint_jax train|eval|infer ...`: the same command as `hint-jax`."""
import sys

from hint_jax.run import main

if __name__ == "__main__":
  sys.exit(main.main())
