"""Tests for TaskParams <-> safetensors."""
import jax
import numpy as np
import pytest

from hint_jax.peft import kinds, spec
from hint_jax.serving import task_params_io

DIMS = spec.BackboneDims(d_model=6, num_heads=2, head_dim=3, num_encoder_layers=2,
                         num_decoder_layers=1, d_ff=5)


@pytest.mark.parametrize("peft", [
    spec.PeftConfig(adapter_size=4, prefix_length=2, lora=None),
    spec.PeftConfig(adapter_size=None, prefix_length=None,
                    lora=spec.LoraConfig(rank=2, alpha=3.0, projections=("query", "out"))),
    spec.PeftConfig(adapter_size=None, prefix_length=2, ia3=spec.Ia3Config(),
                    lora=spec.LoraConfig(rank=2, alpha=3.0, projections=("query", "out"))),
])
def test_save_load_round_trip(tmp_path, peft):
  structs = spec.task_param_structs(peft, DIMS, 1)
  leaves, treedef = jax.tree.flatten(structs)
  rng = np.random.default_rng(0)
  params = jax.tree.unflatten(treedef, [rng.normal(size=s.shape).astype(np.float32)
                                        for s in leaves])
  path = str(tmp_path / "tp.safetensors")
  task_params_io.save(path, params, extra={"hidden": np.ones((1, 2), np.float32)})
  loaded, extra = task_params_io.load(path)
  assert jax.tree.structure(loaded) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  np.testing.assert_array_equal(extra["hidden"], np.ones((1, 2)))
  if peft.lora is not None:
    assert loaded.decoder_cross.lora["out"].scale == 1.5
  assert not list(tmp_path.glob(".tmp-*"))


def test_unflatten_rejects_unknown_names():
  with pytest.raises(ValueError, match="bogus"):
    task_params_io.unflatten({"bogus.a": np.zeros(1)})


def test_unknown_kinds_are_errors_both_ways(monkeypatch):
  with pytest.raises(ValueError, match="unknown generated-module kind 'bogus'"):
    task_params_io.unflatten({"encoder.bogus.a": np.zeros(1)})
  peft = spec.PeftConfig(adapter_size=None, prefix_length=None, ia3=spec.Ia3Config())
  params = jax.tree.map(lambda s: np.ones(s.shape, np.float32),
                        spec.task_param_structs(peft, DIMS, 1))
  arrays, _ = task_params_io.flatten(params)
  assert sorted(arrays)[:3] == ["decoder_cross.ia3.key", "decoder_cross.ia3.value",
                                "decoder_self.ia3.key"]
  monkeypatch.delitem(kinds.KINDS, "ia3")  # a kind nobody declared is never dropped
  with pytest.raises(ValueError, match="unknown generated-module kind 'ia3'"):
    task_params_io.flatten(params)
  with pytest.raises(ValueError, match="unknown generated-module kind 'ia3'"):
    task_params_io.unflatten(arrays)
