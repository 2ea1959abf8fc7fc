"""benchmarks/pod_memory.py: its accounting of collectives in an optimised HLO module, and the
published HINT-XL step fitting a chip."""
import importlib.util
import json
import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "pod_memory.py"

HLO = """HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  ROOT %x = f32[] add(f32[] %a, f32[] %b)
}

%body (p: (s32[], f32[8], /*index=2*/f32[1])) -> (s32[], f32[8], /*index=2*/f32[1]) {
  %ar = f32[8]{0} all-reduce(f32[8]{0} %g), to_apply=%add
  %c = bf16[2,4]{1,0} call(), to_apply=%inner
  %layers = (s32[]) while(%i), condition=%cond, body=%layer, backend_config={"known_trip_count":{"n":"24"}}
  ROOT %t = tuple()
}

%layer (p: (s32[], /*index=1*/f32[2])) -> (s32[], /*index=1*/f32[2]) {
  ROOT %rs = f32[2]{0} reduce-scatter(f32[4]{0} %x), dimensions={0}, to_apply=%add
}

%inner () -> bf16[2,4] {
  ROOT %ag = bf16[2,4]{1,0} all-gather(bf16[1,4]{1,0} %q), dimensions={0}
}

%cond (p: (s32[], f32[8])) -> pred[] {
  ROOT %c = pred[] constant(true)
}

ENTRY %main (a: f32[4]) -> f32[16] {
  %w = (s32[], f32[8]) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"16"}}
  ROOT %ag2 = f32[16]{0} all-gather(f32[4]{0} %a), dimensions={0}
}
"""


def _bench():
  module_spec = importlib.util.spec_from_file_location("pod_memory", SCRIPT)
  bench = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(bench)
  return bench


def test_collectives_inside_loops_count_once_per_trip():
  out = _bench().collective_bytes(HLO)
  assert out["all-reduce"] == {"ops": 1, "bytes": 16 * 8 * 4}
  # the loop's nested all-gather (16 trips x 2x4 bf16) plus the entry's f32[16]
  assert out["all-gather"] == {"ops": 2, "bytes": 16 * 8 * 2 + 16 * 4}
  # a loop nested in the loop (a layer scan inside the microbatch loop): 16 x 24 trips; the
  # computation headers' `/*index=N*/` comments do not hide them
  assert out["reduce-scatter"] == {"ops": 1, "bytes": 16 * 24 * 2 * 4}


def test_hint_xl_train_step_fits_a_v5e_chip(tmp_path):
  """The published HINT-XL fine-tuning step (gin files as `hint-jax train` reads them: lengths
  1024/1024/256, dropout 0.1, bf16, remat full, scanned layers), compiled from shapes for a
  data 2 x model 8 slice with the per-device load of the 64-chip run (8 examples per data shard
  and microbatch): under 15 GiB per device, with the activation constraints in the program."""
  out = tmp_path / "xl.json"
  subprocess.run([sys.executable, str(SCRIPT), "--model", "xl", "--devices", "16",
                  "--model_parallel", "8", "--batch", "256", "--microbatches", "16",
                  "--out", str(out)], check=True, capture_output=True, timeout=1200)
  result = json.loads(out.read_text())
  assert result["config"]["model"] == "hint_xl"
  assert result["per_device_gib"]["peak"] < 15.0, result["per_device_gib"]
  assert result["sharding_constraints"] > 100
  assert result["collectives_gib_per_step"]["all-reduce"] > 0
