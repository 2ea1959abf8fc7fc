"""Drill 10: the disk cache of TaskParams never serves another model's or a damaged entry.

Entries are keyed by the content of what produced them (a fingerprint of the weights and the
model config, the vocabulary's bytes, the instruction bucket, `cache_memory`). Each disk entry is
checked when loaded (readable, its recorded key, structure, shapes, dtypes, finite values); a
bad one is reported in one warning line naming the file, deleted and regenerated. Writers in
separate processes are safe, and files keep the umask's permissions.
"""
import logging
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from reliability_helpers import tiny_hint

from hint_jax.data import vocab as vocab_lib
from hint_jax.serving import cache as cache_lib
from hint_jax.serving import checkpoint_io
from hint_jax.serving import predictor as predictor_lib
from hint_jax.training import checkpoint

REPO = pathlib.Path(__file__).resolve().parents[2]
BUCKETS = predictor_lib.Buckets(batch_sizes=(2,), input_lengths=(8,), instruction_lengths=(8, 16),
                                max_decode_len=2)
INSTRUCTION = "Answer yes or no."


@pytest.fixture(scope="module")
def models():
  """Two tiny HINT models of one config with different weights (seed 0 and seed 1)."""
  model, params0 = tiny_hint(seed=0)
  _, params1 = tiny_hint(seed=1)
  return model, params0, params1, vocab_lib.get_vocabulary()


def _predictor(models, cache_dir, params=None, **kw) -> predictor_lib.Predictor:
  model, params0, _, vocab = models
  params = jax.tree.map(jnp.asarray, params0 if params is None else params)
  return predictor_lib.Predictor(model, params, vocab, buckets=BUCKETS, cache_dir=str(cache_dir),
                                 **kw)


def _entry_file(cache_dir) -> pathlib.Path:
  files = sorted(pathlib.Path(cache_dir).glob("*.safetensors"))
  assert len(files) == 1, files
  return files[0]


def _assert_same(a, b) -> None:
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5), a, b)


def _save_run(path: pathlib.Path, model, params, step: int = 3) -> None:
  ckpt = checkpoint.Checkpointer(path / "checkpoints",
                                 checkpoint.CheckpointConfig(async_save=False), "sig")
  state = {"trainable": {"hypernet": params["hypernet"]},
           "frozen": {"backbone": params["backbone"]}}
  ckpt.save(step, state, {"hint_config": checkpoint_io.config_to_dict(model.config)})
  ckpt.close()


@pytest.mark.parametrize("how", ["retrain_in_place", "moved_symlink"])
def test_new_weights_at_same_path_and_step_miss_the_cache(models, tmp_path, how):
  """Before: the key was `<dir>@<step>`, so the old entries were served for the new weights."""
  model, params0, params1, vocab = models
  cache_dir, runs = tmp_path / "cache", tmp_path / "runs"
  _save_run(runs / "a", model, params0)
  served = runs / "a"
  if how == "moved_symlink":
    _save_run(runs / "b", model, params1)
    served = runs / "current"
    served.symlink_to(runs / "a")
  kw = {"buckets": BUCKETS, "vocab": vocab, "cache_dir": str(cache_dir)}
  first = predictor_lib.Predictor.from_checkpoint(str(served), **kw)
  first.adapt(INSTRUCTION)
  if how == "retrain_in_place":
    shutil.rmtree(runs / "a")
    _save_run(runs / "a", model, params1)  # same path, same step 3, other weights
  else:
    served.unlink()
    served.symlink_to(runs / "b")
  second = predictor_lib.Predictor.from_checkpoint(str(served), **kw)
  assert second.source == first.source  # same `<dir>@3`
  assert second.checkpoint_id != first.checkpoint_id
  got = second.adapt(INSTRUCTION)
  assert (second.cache.stats.disk_hits, second.cache.stats.misses) == (0, 1)
  _assert_same(got, _predictor(models, tmp_path / "fresh", params1, cache_bytes=0)
               .adapt(INSTRUCTION))


def test_same_weights_elsewhere_hit_the_cache(models, tmp_path):
  """The key is the content: a copy of the same weights reuses the entries."""
  _predictor(models, tmp_path).adapt(INSTRUCTION)
  copy = jax.tree.map(lambda x: np.array(x, copy=True), models[1])
  again = _predictor(models, tmp_path, copy)
  again.adapt(INSTRUCTION)
  assert (again.cache.stats.disk_hits, again.cache.stats.misses) == (1, 0)


@pytest.mark.parametrize("first_memory", [True, False], ids=["memory_then_plain",
                                                             "plain_then_memory"])
def test_cache_dir_shared_by_both_cache_memory_settings(models, tmp_path, first_memory):
  """Before: the second setting loaded the other's entry and crashed with a pytree error."""
  _predictor(models, tmp_path, cache_memory=first_memory).adapt(INSTRUCTION)
  other = _predictor(models, tmp_path, cache_memory=not first_memory)
  entry = other.adaptation(INSTRUCTION)
  assert other.cache.stats.disk_hits == 0 and other.cache.stats.misses == 1
  assert (entry.memory is None) == first_memory and (entry.hidden is None) == (not first_memory)
  assert len(list(tmp_path.glob("*.safetensors"))) == 2
  (prediction,) = other.generate([INSTRUCTION], ["a b"])
  assert isinstance(prediction, str)


def test_other_instruction_buckets_miss_without_deleting(models, tmp_path):
  """Predictors with other buckets pad instructions differently: their own keys, no thrashing."""
  _predictor(models, tmp_path).adapt(INSTRUCTION)
  model, params0, _, vocab = models
  other = predictor_lib.Predictor(
      model, jax.tree.map(jnp.asarray, params0), vocab, cache_dir=str(tmp_path),
      buckets=predictor_lib.Buckets(batch_sizes=(2,), input_lengths=(8,),
                                    instruction_lengths=(16,), max_decode_len=2))
  other.adapt(INSTRUCTION)
  assert (other.cache.stats.misses, other.cache.stats.bad_entries) == (1, 0)
  assert len(list(tmp_path.glob("*.safetensors"))) == 2


def _rewrite(path: pathlib.Path, change) -> None:
  """Loads the entry's arrays and metadata, applies `change(arrays, metadata)`, writes it back."""
  data = path.read_bytes()
  arrays = dict(safetensors.numpy.load(data))
  metadata = dict(cache_lib.task_params_io._read_metadata(data))  # pylint: disable=protected-access
  change(arrays, metadata)
  path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))


def _first(arrays, prefix="encoder.adapter.down"):
  return next(k for k in sorted(arrays) if k.startswith(prefix))


def _set_nan(arrays, _):
  k = _first(arrays)
  arrays[k] = arrays[k].copy()
  arrays[k].flat[3] = np.nan


def _set_inf(arrays, _):
  k = _first(arrays, "extra.memory_value")
  arrays[k] = arrays[k].copy()
  arrays[k].flat[0] = -np.inf


def _other_shape(arrays, _):  # as written by a model with a smaller adapter
  k = _first(arrays)
  arrays[k] = np.ascontiguousarray(arrays[k][..., :2])


def _other_dtype(arrays, _):
  k = _first(arrays)
  arrays[k] = arrays[k].astype(np.float16)


def _drop_array(arrays, _):
  del arrays[_first(arrays, "decoder_self.prefix.key")]


def _extra_array(arrays, _):
  arrays["extra.bogus"] = np.zeros((1,), np.float32)


def _foreign_key(_, metadata):  # another key's file copied (or renamed) to this name
  metadata[cache_lib.KEY_METADATA] = "0" * 64


def _not_a_bucket(arrays, _):  # instruction length 5 is none of the buckets (8, 16)
  arrays["extra.mask"] = np.ascontiguousarray(arrays["extra.mask"][:, :5])
  for k in ("extra.memory_key", "extra.memory_value"):
    arrays[k] = np.ascontiguousarray(arrays[k][:, :, :5])


def _unknown_name(arrays, _):
  arrays["encoder.hyper.a"] = np.zeros((1,), np.float32)


# (id, damage to the file, words of the one-line reason)
DAMAGE = [
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
     "not a readable TaskParams file"),
    ("garbled_header", lambda p: p.write_bytes(b"\x10\x00" + p.read_bytes()[2:]),
     "not a readable TaskParams file"),
    ("empty_file", lambda p: p.write_bytes(b""), "not a readable TaskParams file"),
    ("text_file", lambda p: p.write_text("hello"), "not a readable TaskParams file"),
    ("nan_values", lambda p: _rewrite(p, _set_nan), "non-finite values in"),
    ("inf_values", lambda p: _rewrite(p, _set_inf), "non-finite values in memory_value"),
    ("other_model_shape", lambda p: _rewrite(p, _other_shape), "do not fit this model"),
    ("other_dtype", lambda p: _rewrite(p, _other_dtype), "float16"),
    ("missing_array", lambda p: _rewrite(p, _drop_array), "do not fit this model"),
    ("unknown_extra_array", lambda p: _rewrite(p, _extra_array), "unknown arrays ['bogus']"),
    ("unknown_array_name", lambda p: _rewrite(p, _unknown_name), "not a TaskParams array name"),
    ("foreign_key", lambda p: _rewrite(p, _foreign_key), "written for key '000"),
    ("instruction_length_not_a_bucket", lambda p: _rewrite(p, _not_a_bucket),
     "instruction length 5 is not one of this predictor's buckets"),
]


@pytest.mark.parametrize("damage,reason", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_bad_entry_is_reported_deleted_and_regenerated(models, tmp_path, caplog, damage, reason):
  expected = _predictor(models, tmp_path).adapt(INSTRUCTION)
  path = _entry_file(tmp_path)
  damage(path)
  served = _predictor(models, tmp_path)
  with caplog.at_level(logging.WARNING, logger="hint_jax.serving.cache"):
    got = served.adapt(INSTRUCTION)
  lines = [r.getMessage() for r in caplog.records if r.name == "hint_jax.serving.cache"]
  assert len(lines) == 1 and "\n" not in lines[0], lines
  assert lines[0].startswith(f"bad TaskParams cache entry {path}: ") and reason in lines[0]
  assert lines[0].endswith("; deleted, regenerating")
  _assert_same(got, expected)
  stats = served.cache.stats
  assert (stats.bad_entries, stats.disk_hits, stats.misses) == (1, 0, 1)
  # The regenerated entry replaced the bad one and is served from disk again.
  again = _predictor(models, tmp_path)
  _assert_same(again.adapt(INSTRUCTION), expected)
  assert (again.cache.stats.disk_hits, again.cache.stats.bad_entries) == (1, 0)
  assert [p.name for p in tmp_path.iterdir()] == [path.name]


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from hint_jax.serving import cache as cache_lib, task_params_io
    path, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = open(sys.argv[4], "rb").read()
    params, extra, _ = task_params_io.load(sys.argv[4], with_metadata=True)
    print("READY", flush=True)
    for _ in range(n):
      task_params_io.save(path, params, extra=extra, metadata={cache_lib.KEY_METADATA: key})
""")


def test_concurrent_writers_in_separate_processes(models, tmp_path):
  """Three processes rewrite one entry 40 times each while this one keeps reading it."""
  source = tmp_path / "source"
  source.mkdir()
  _predictor(models, source).adapt(INSTRUCTION)
  template = _entry_file(source)
  key = template.name.split(".")[0]
  shared = tmp_path / "shared"
  shared.mkdir()
  target = shared / template.name
  env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(target), key, "40",
                             str(template)], env=env, stdout=subprocess.PIPE, text=True)
           for _ in range(3)]
  for p in procs:
    assert p.stdout.readline().strip() == "READY"
  reads = 0
  while any(p.poll() is None for p in procs):
    reader = cache_lib.TaskParamsCache(0, str(shared))
    entry = reader.get(key)
    assert reader.stats.bad_entries == 0  # never a partial file
    reads += entry is not None
  assert all(p.wait() == 0 for p in procs)
  assert [p.name for p in shared.iterdir()] == [template.name]  # no temp files left
  final = cache_lib.TaskParamsCache(0, str(shared))
  assert final.get(key) is not None and final.stats.bad_entries == 0 and reads > 0
  want, got = (dict(safetensors.numpy.load(f.read_bytes())) for f in (template, target))
  assert want.keys() == got.keys()
  for k, v in want.items():
    np.testing.assert_array_equal(got[k], v, err_msg=k)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664)])
def test_cache_files_keep_umask_permissions(models, tmp_path, umask, mode):
  """Before: mkstemp's 0600, which other users of a shared cache dir cannot read."""
  old = os.umask(umask)
  try:
    _predictor(models, tmp_path).adapt(INSTRUCTION)
  finally:
    os.umask(old)
  assert stat.S_IMODE(_entry_file(tmp_path).stat().st_mode) == mode
