"""setup.py's ranges and constraints.txt's lock agree: every direct dependency is pinned, and the
pinned version (the one the suite runs with) lies inside setup.py's range, at its lower series."""
import ast
import pathlib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setup_kwargs() -> tuple[list[str], dict]:
  tree = ast.parse((ROOT / "setup.py").read_text())
  core = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and any(getattr(t, "id", None) == "_CORE" for t in n.targets))
  call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
              and getattr(n.func, "attr", None) == "setup")
  kwargs = {k.arg: k.value for k in call.keywords}
  return core, {"python_requires": ast.literal_eval(kwargs["python_requires"]),
                "extras": ast.literal_eval(kwargs["extras_require"])}


def _pins() -> dict[str, Version]:
  pins = {}
  for line in (ROOT / "constraints.txt").read_text().splitlines():
    if line.strip() and not line.startswith("#"):
      name, version = line.split("==")
      pins[canonicalize_name(name)] = Version(version)
  return pins


def test_every_direct_dependency_is_pinned_inside_its_range():
  core, kw = _setup_kwargs()
  pins = _pins()
  direct = core + kw["extras"]["test"] + [r for r in kw["extras"]["convert"]
                                          if not r.startswith("torch")]
  problems = []
  for text in direct:
    req = Requirement(text)
    pin = pins.get(canonicalize_name(req.name))
    if pin is None:
      problems.append(f"{req.name}: not pinned in constraints.txt")
    elif not req.specifier.contains(pin, prereleases=True):
      problems.append(f"{req.name}: pinned {pin} outside setup.py's {req.specifier}")
  assert not problems, problems


def test_lower_bounds_of_the_jax_stack_are_the_tested_series():
  """The JAX stack's lower bounds name the release series the suite runs (older ones lack APIs
  the code uses), so `pip install hint_jax` never picks an untested series."""
  core, _ = _setup_kwargs()
  pins = _pins()
  for text in core:
    req = Requirement(text)
    if canonicalize_name(req.name) in ("jax", "flax", "orbax-checkpoint", "grain"):
      lower = next(Version(s.version) for s in req.specifier if s.operator == ">=")
      assert lower.release[:2] == pins[canonicalize_name(req.name)].release[:2], text


def test_python_requires_admits_the_pinned_stack():
  _, kw = _setup_kwargs()
  assert SpecifierSet(kw["python_requires"]).contains("3.11")
  assert not SpecifierSet(kw["python_requires"]).contains("3.10")  # jax/flax/grain need 3.11
