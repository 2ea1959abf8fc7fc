"""Fine-tuning from another run accepts its run directory or its checkpoints directory and logs
what is initialised from where."""
import logging

import numpy as np

from hint_jax.run import assemble
from hint_jax.training import checkpoint


def test_init_from_run_dir_or_checkpoints_dir(tmp_path, caplog):
  ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints",
                                 checkpoint.CheckpointConfig(async_save=False), "sig")
  state = {"trainable": {"backbone": {"w": np.arange(3, dtype=np.float32)},
                         "hypernet": {"v": np.ones(2, np.float32)}}, "frozen": {}}
  ckpt.save(7, state, {})
  ckpt.close()
  with caplog.at_level(logging.INFO, logger="hint_jax.run.assemble"):
    from_run = assemble.pretrained_params(None, str(tmp_path), ("backbone/.*",))
  from_ckpts = assemble.pretrained_params(None, str(tmp_path / "checkpoints"))
  assert from_run.keys() == from_ckpts.keys() and len(from_run) == 2
  for key, value in from_run.items():
    np.testing.assert_array_equal(value, from_ckpts[key])
  line = " ".join(r.getMessage() for r in caplog.records)
  assert f"from checkpoint {tmp_path / 'checkpoints'} step 7 (1 of its 2 arrays match)" in line
  assert "['backbone/.*']" in line
