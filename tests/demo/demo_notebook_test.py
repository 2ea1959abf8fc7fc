"""notebooks/hint_demo.ipynb runs top to bottom on CPU with the tiny budget (nbclient)."""
import pathlib

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
