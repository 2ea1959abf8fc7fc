"""Checks on the package layout that reviews rely on."""
import ast
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PKG = REPO / "hint_jax"

# DESIGN §1 / docs/architecture.md: what each unit of hint_jax may import. A unit is a
# subpackage, or one of the leaf modules named here (they import `types` only, so every layer
# may use them: the batch feature names, the attention masks, the trainer's model interface).
_BASE = ("types", "axes", "layers.masks", "data.features")
_MODEL_STACK = (*_BASE, "peft", "layers", "t5", "hypernet", "models", "models.interface")
ALLOWED = {
    "types": (), "axes": (), "layers.masks": ("types",), "data.features": ("types",),
    "models.interface": ("types",),
    "peft": _BASE,
    "layers": (*_BASE, "peft"),
    "t5": (*_BASE, "peft", "layers"),
    "hypernet": (*_BASE, "peft", "layers", "t5"),
    "models": _MODEL_STACK,
    "parallel": _BASE,
    "data": _BASE,  # no model code
    "training": (*_BASE, "parallel", "models.interface"),  # the trainer sees the interface only
    "evaluation": (*_MODEL_STACK, "data"),
    "serving": (*_MODEL_STACK, "data", "parallel", "training", "evaluation"),
    "run": (*_MODEL_STACK, "data", "parallel", "training", "evaluation", "serving", "run",
            "hint_jax_tasks"),  # the entry points: the only importers of the registrations
    "__main__": ("run",),
    "__init__": (),
}


def _imports(path: pathlib.Path) -> set[str]:
  """Modules `path` imports anywhere (function bodies and `importlib.import_module("x")` too);
  `from a import b` yields `a.b`."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.update(f"{node.module}.{a.name}" for a in node.names)
    elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
          and node.args and isinstance(node.args[0], ast.Constant)):
      names.add(node.args[0].value)
  return names


def _unit(module: str) -> str | None:
  """The ALLOWED unit of a module name: 'hint_jax.data.features' -> 'data.features',
  'hint_jax.run.main' -> 'run', 'hint_jax_tasks.sni' -> 'hint_jax_tasks'; None outside."""
  parts = module.split(".")
  if parts[0] in ("hint_jax_tasks", "tasks"):
    return "hint_jax_tasks"
  if parts[0] != "hint_jax" or len(parts) == 1:
    return None
  leaf = ".".join(parts[1:3])
  return leaf if leaf in ALLOWED else parts[1]


def _edges() -> dict[tuple[str, str], list[str]]:
  """{(importing unit, imported unit): [files]} over every module of hint_jax."""
  edges: dict[tuple[str, str], list[str]] = {}
  for path in sorted(PKG.rglob("*.py")):
    rel = path.relative_to(PKG).with_suffix("")
    src = _unit("hint_jax." + ".".join(rel.parts))
    for name in _imports(path):
      dst = _unit(name)
      if dst and dst != src:
        edges.setdefault((src, dst), []).append(str(path.relative_to(REPO)))
  return edges


def test_imports_follow_the_layering():
  edges = _edges()
  unknown = sorted({u for e in edges for u in e} - set(ALLOWED) - {"hint_jax_tasks"})
  assert not unknown, f"units missing from ALLOWED (add them to the layering): {unknown}"
  upward = [f"{a} -> {b} ({', '.join(sorted(set(files)))})" for (a, b), files in edges.items()
            if b not in ALLOWED[a]]
  assert not upward, "imports against DESIGN §1:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_units():
  graph: dict[str, set[str]] = {}
  for a, b in _edges():
    graph.setdefault(a, set()).add(b)
  cycles, state = [], {}

  def visit(node: str, stack: list[str]) -> None:
    state[node] = "open"
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
      elif nxt not in state:
        visit(nxt, [*stack, nxt])
    state[node] = "done"
  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, f"import cycles: {cycles}"


def test_tasks_import_only_the_data_layer():
  bad = []
  for path in sorted((REPO / "tasks").glob("*.py")):
    for name in _imports(path):
      unit = _unit(name)
      if unit not in (None, "hint_jax_tasks") and not unit.startswith("data"):
        bad.append(f"{path.relative_to(REPO)}: {name}")
      if name.split(".")[0] == "tasks":
        bad.append(f"{path.relative_to(REPO)}: {name} (import hint_jax_tasks, not tasks)")
  assert not bad, f"tasks/ imports outside hint_jax.data: {bad}"


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
