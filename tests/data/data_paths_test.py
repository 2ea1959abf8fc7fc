"""Tests of the data-directory configuration (argument > $HINT_DATA_DIR > ../shared/data)."""
from hint_jax.data import paths, sni_examples


def test_resolution_order(monkeypatch, tmp_path, shared_data):
  monkeypatch.delenv(paths.ENV_VAR, raising=False)
  assert str(paths.data_dir()) == str(shared_data)
  monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
  assert str(paths.data_dir()) == str(tmp_path)
  assert str(paths.sni_dir()) == str(tmp_path / "sni")
  assert str(paths.p3_dir("gs://bucket/p3")) == "gs://bucket/p3"
  assert str(paths.data_dir(shared_data)) == str(shared_data)


def test_env_var_redirects_sni_records(monkeypatch, tmp_path):
  (tmp_path / "sni" / "tasks").mkdir(parents=True)
  (tmp_path / "sni" / "splits" / "default").mkdir(parents=True)
  (tmp_path / "sni" / "tasks" / "task7_x.json").write_text(
      '{"Definition": ["Echo."], "Positive Examples": [], '
      '"Instances": [{"id": "i1", "input": "a", "output": ["a"]}]}')
  (tmp_path / "sni" / "splits" / "default" / "test_tasks.txt").write_text("task7_x\n")
  monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
  records = list(sni_examples.records("test"))
  assert [(r["task"], r["instruction"], r["targets"]) for r in records] == [
      ("task7_x", "Echo.", "a")]
