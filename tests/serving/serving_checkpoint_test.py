"""Tests for loading a trainer model directory into a Predictor."""
import json

import jax
import numpy as np
import pytest

from hint_jax.hypernet import config as hypernet_config
from hint_jax.peft import spec
from hint_jax.serving import cache as cache_lib
from hint_jax.serving import checkpoint_io
from hint_jax.serving import predictor as predictor_lib
from hint_jax.training import checkpoint

BUCKETS = predictor_lib.Buckets(batch_sizes=(2,), input_lengths=(16,), instruction_lengths=(16,),
                                max_decode_len=4)


PEFT = spec.PeftConfig(adapter_size=3, prefix_length=None,
                       lora=spec.LoraConfig(rank=2, projections=("query", "out")))


@pytest.fixture(scope="module")
def run(make_model):
  return make_model(PEFT, hypernet_config.HypernetConfig(), True, max_instruction_length=16)


def test_config_dict_round_trip(run):
  cfg = run[0].config
  assert checkpoint_io.config_from_dict(json.loads(json.dumps(
      checkpoint_io.config_to_dict(cfg)))) == cfg


def _save_run(model_dir, run, meta):
  model, params, _ = run
  ckpt = checkpoint.Checkpointer(str(model_dir / "checkpoints"),
                                 checkpoint.CheckpointConfig(async_save=False), "sig")
  state = {"trainable": {"hypernet": params["hypernet"]},
           "frozen": {"backbone": params["backbone"]}}
  ckpt.save(7, state, meta)
  ckpt.close()
  return model, params


@pytest.mark.parametrize("where", ["meta", "file"])
def test_from_checkpoint_matches_in_memory_predictor(tmp_path, run, where):
  cfg = run[0].config
  meta = {"hint_config": checkpoint_io.config_to_dict(cfg)} if where == "meta" else {}
  model, params = _save_run(tmp_path, run, meta)
  if where == "file":
    checkpoint_io.save_config(str(tmp_path), cfg)
  loaded = predictor_lib.Predictor.from_checkpoint(str(tmp_path), buckets=BUCKETS)
  assert loaded.model.config == cfg
  assert loaded.source.endswith("@7")
  assert loaded.checkpoint_id == cache_lib.params_fingerprint(params, cfg)
  jax.tree.map(np.testing.assert_array_equal, loaded.params, params)
  direct = predictor_lib.Predictor(model, params, loaded.vocab, buckets=BUCKETS)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
               loaded.adapt("Answer briefly."), direct.adapt("Answer briefly."))


def test_missing_config_and_checkpoint_are_clear_errors(tmp_path, run):
  with pytest.raises(FileNotFoundError, match="no model directory"):
    predictor_lib.Predictor.from_checkpoint(str(tmp_path / "absent"))
  _save_run(tmp_path, run, {})
  with pytest.raises(ValueError, match="no model config"):
    predictor_lib.Predictor.from_checkpoint(str(tmp_path))
