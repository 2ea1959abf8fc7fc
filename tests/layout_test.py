"""Checks on the package layout that reviews rely on."""
import ast
import pathlib
import subprocess
import sys

PKG = pathlib.Path(__file__).resolve().parents[1] / "hint_jax"


def _imports(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
  return names


def test_gin_only_in_entry_points():
  offenders = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
               if "run" not in p.relative_to(PKG).parts
               and any(n == "gin" or n.startswith("gin.") for n in _imports(p))]
  assert not offenders, f"gin imported outside hint_jax/run/: {offenders}"


def test_model_modules_import_without_tensorflow():
  code = ("import sys; sys.modules['tensorflow'] = None\n"
          "import importlib, pkgutil, hint_jax\n"
          "for sub in ('peft', 't5', 'hypernet', 'models', 'serving', 'layers'):\n"
          "  pkg = importlib.import_module('hint_jax.' + sub)\n"
          "  for m in pkgutil.iter_modules(pkg.__path__):\n"
          "    importlib.import_module(f'hint_jax.{sub}.{m.name}')\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]


def test_file_size_budget():
  big = [f"{p.relative_to(PKG)} ({n} lines)" for p in PKG.rglob("*.py")
         if (n := len(p.read_text().splitlines())) > 400]
  assert not big, f"modules over 400 lines: {big}"
