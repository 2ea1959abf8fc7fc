"""notebooks/hint_demo.ipynb runs top to bottom on CPU with the tiny budget (nbclient)."""
import ast
import glob
import importlib.metadata
import os
import pathlib
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "hint_demo.ipynb"


def _text(cell) -> str:
  return "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
                 for o in cell.get("outputs", []))


@pytest.mark.slow
def test_notebook_executes_with_tiny_budget(tmp_path, monkeypatch):
  monkeypatch.setenv("HINT_DEMO_PRESET", "tiny")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", "")  # one CPU device in the kernel, not the suite's eight
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  outputs = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
  assert "backend: cpu" in outputs
  assert "hint: 12 steps" in outputs and "concat: 12 steps" in outputs
  assert "generated task parameters:" in outputs and "HINT:" in outputs
  assert "| hint | heldout_task |" in outputs and "| concat | heldout_paraphrase |" in outputs
  assert "XL, SNI Def+2Pos, 100 examples per task" in outputs
  assert (tmp_path / "notebook_out" / "hint").is_dir()


def _accelerator_extra():
  """`accelerator_extra` as defined in the notebook's install cell."""
  nb = nbformat.read(NOTEBOOK, as_version=4)
  install = next(c.source for c in nb.cells if c.cell_type == "code")
  tree = ast.parse(install)
  fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "accelerator_extra")
  scope = {}
  exec(compile(ast.Module([n for n in tree.body if isinstance(n, ast.Import)] + [fn], []),  # noqa: S102
               str(NOTEBOOK), "exec"), scope)
  return scope["accelerator_extra"], install


def test_install_cell_picks_the_extra_of_the_runtime(monkeypatch):
  extra, install = _accelerator_extra()
  assert 'REPO_URL = ""' in install and "github.com/hint-jax" not in install  # no placeholder
  for var in ("COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE"):
    monkeypatch.delenv(var, raising=False)
  devices = set()
  monkeypatch.setattr(glob, "glob", lambda pattern: [p for p in devices if p.startswith(pattern[:9])])
  monkeypatch.setattr(shutil, "which", lambda name: None)
  monkeypatch.setattr(os.path, "exists", lambda path: path in devices)
  assert extra() == ""  # CPU: plain hint_jax
  devices.add("/dev/nvidia0")
  assert extra() == "gpu"
  monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v5litepod-8")
  assert extra() == "tpu"
  monkeypatch.delenv("TPU_ACCELERATOR_TYPE")
  devices.add("/dev/accel0")
  assert extra() == "tpu"
  extras = importlib.metadata.metadata("hint_jax").get_all("Provides-Extra")
  assert {"tpu", "gpu"} <= set(extras), extras  # the names the cell installs exist in setup.py
