"""benchmarks/hint_flops.py at tiny sizes: XLA counts agree with the analytic ones, and the
hypernetwork's per-task cost is amortised over the examples of a task."""
import importlib.util
import json
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "hint_flops.py"


def test_hint_flops_benchmark_tiny(tmp_path):
  module_spec = importlib.util.spec_from_file_location("hint_flops", SCRIPT)
  bench = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(bench)
  out = tmp_path / "flops.json"
  report = bench.main(["--out", str(out), "--size", "tiny", "--adapter", "7", "--prefix", "2",
                       "--instructions", "24", "--inputs", "8", "--targets", "4",
                       "--n", "1", "10"])
  assert json.loads(out.read_text()) == json.loads(json.dumps(report))
  (row,) = report["rows"]
  for key, xla in row["xla"].items():
    assert abs(xla - row["analytic"][key]) <= 0.25 * xla, key  # tiny: softmax etc. matter more
  one, ten = row["per_example"]["1"], row["per_example"]["10"]
  assert one["hint"] > ten["hint"] > row["xla"]["hint_per_example_fixed"]
  assert ten["concat"] == one["concat"] == row["xla"]["concat"]
