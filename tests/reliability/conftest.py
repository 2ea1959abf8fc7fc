"""Fixtures of the reliability drills (helpers live in reliability_helpers.py)."""
import pytest
import reliability_helpers as helpers


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
  """`reference(steps)`: flat params of an uninterrupted toy run (in-process, 8 CPU devices)."""
  import training_toy_model as toy  # pylint: disable=import-outside-toplevel

  from hint_jax.training import loop  # pylint: disable=import-outside-toplevel
  done = {}

  def run(steps: int) -> dict:
    if steps not in done:
      model_dir = tmp_path_factory.mktemp(f"reference{steps}")
      state = loop.train(helpers.toy_config(model_dir, steps), toy.ToyModel(), toy.source())
      done[steps] = helpers.flat_params(state)
    return done[steps]
  return run
