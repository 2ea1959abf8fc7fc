"""Drill 9: `hint-jax infer` flags are checked before any work; no temp file outlives a signal.

A bad flag is one `bad command line` line naming the flag and its allowed range, exit 2. The
model directory and input file of these cases do not exist: a check that ran after any work
would report them instead. SIGTERM, SIGHUP and SIGINT during a run remove the temp output and
exit 128 + signal with one line. Output files get the umask's permissions (not mkstemp's 0600).
"""
import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from hint_jax.serving import cli

REPO = pathlib.Path(__file__).resolve().parents[2]

# (flag, value, allowed range as the message says it)
BAD_FLAGS = [
    ("--batch_size", "-1", "an integer >= 1"),
    ("--batch_size", "0", "an integer >= 1"),
    ("--max_decode_len", "0", "an integer >= 1"),
    ("--max_decode_len", "-3", "an integer >= 1"),
    ("--num_beams", "0", "an integer >= 1"),
    ("--temperature", "-1", "a finite number > 0"),
    ("--temperature", "0", "a finite number > 0"),
    ("--temperature", "nan", "a finite number > 0"),
    ("--temperature", "inf", "a finite number > 0"),
    ("--top_p", "0", "a number in (0, 1]"),
    ("--top_p", "1.5", "a number in (0, 1]"),
    ("--top_p", "nan", "a number in (0, 1]"),
    ("--top_k", "-1", "an integer >= 0"),
    ("--seed", "-1", "an integer in [0, 2**63)"),
    ("--cache_mb", "-1", "a finite number >= 0"),
    ("--cache_mb", "nan", "a finite number >= 0"),
    ("--step", "-2", "an integer >= 0"),
]


def _argv(tmp_path, *extra) -> list[str]:
  return ["--model_dir", str(tmp_path / "no_model"), "--input", str(tmp_path / "no_input.jsonl"),
          "--output", str(tmp_path / "out.jsonl"), "--no_progress", *extra]


@pytest.mark.parametrize("flag,value,allowed", BAD_FLAGS,
                         ids=[f"{f[2:]}={v}" for f, v, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_before_any_work(tmp_path, capsys, flag, value, allowed):
  status = cli.infer_main(_argv(tmp_path, flag, value))
  err = capsys.readouterr().err.strip().splitlines()
  assert status == 2 and len(err) == 1, err
  shown = float(value) if flag in ("--temperature", "--top_p", "--cache_mb") else value
  assert err[0].startswith(f"hint-jax infer: error: bad command line: {flag} must be {allowed}")
  assert err[0].endswith(f", got {shown}"), err[0]
  assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,message", [
    (["--batch_size", "two"], "argument --batch_size: invalid int value: 'two'"),
    (["--output", "{w}/no_input.jsonl"], "--output must differ from --input"),
    (["--model_dir", ""], "--model_dir must not be empty"),
], ids=["batch_size_not_int", "output_is_input", "empty_model_dir"])
def test_other_bad_command_lines(tmp_path, capsys, argv, message):
  argv = [a.replace("{w}", str(tmp_path)) for a in argv]
  try:
    status = cli.infer_main([*_argv(tmp_path), *argv])
  except SystemExit as e:  # argparse's own errors exit through the one-line parser
    status = e.code
  err = capsys.readouterr().err.strip().splitlines()
  assert status == 2 and len(err) == 1 and message in err[0], err
  assert list(tmp_path.iterdir()) == []


# A stand-in `_infer` whose predictor is slow, so a signal lands inside run_infer's write.
_SLOW = textwrap.dedent("""
    import sys, time
    from hint_jax.serving import cli

    class Slow:
      class cache:
        class stats:
          hits = disk_hits = misses = evictions = 0
      def generate(self, instructions, inputs, **_):
        print("BATCH", flush=True)
        time.sleep(0.3)
        return ["p"] * len(inputs)

    requests = [{"instruction": "", "input": str(i)} for i in range(200)]
    cli._infer = lambda args: cli.run_infer(Slow(), requests, args.output, args.batch_size,
                                            progress=False)
    sys.exit(cli.infer_main(sys.argv[1:]))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=lambda s: signal.Signals(s).name)
def test_signal_during_infer_leaves_no_temp_file(tmp_path, signum):
  out = tmp_path / "out" / "pred.jsonl"
  out.parent.mkdir()
  (tmp_path / "in.jsonl").write_text("{}\n")
  proc = subprocess.Popen(
      [sys.executable, "-c", _SLOW, "--model_dir", "m", "--input", str(tmp_path / "in.jsonl"),
       "--output", str(out), "--batch_size", "2", "--no_progress"],
      cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"},
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  for _ in range(2):  # two batches written to the temp file
    assert proc.stdout.readline().strip() == "BATCH"
  assert [p.name for p in out.parent.iterdir() if p.name.startswith(".infer-")]
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=60)
  name = signal.Signals(signum).name
  assert proc.returncode == 128 + signum, stderr
  lines = stderr.strip().splitlines()
  assert lines == [f"hint-jax infer: error: interrupted by {name}; no output written to {out}"]
  assert list(out.parent.iterdir()) == []


class _Echo:
  class cache:  # the attributes run_infer reads
    class stats:
      hits = disk_hits = misses = evictions = 0

  def generate(self, instructions, inputs, **_):
    return list(inputs)


@pytest.mark.parametrize("umask,existing,mode", [(0o022, None, 0o644), (0o002, None, 0o664),
                                                 (0o077, 0o664, 0o664)],
                         ids=["new_umask_022", "new_umask_002", "existing_0664_kept"])
def test_output_file_keeps_umask_permissions(tmp_path, umask, existing, mode):
  out = tmp_path / "pred.jsonl"
  if existing is not None:
    out.write_text("old\n")
    out.chmod(existing)
  old = os.umask(umask)
  try:
    cli.run_infer(_Echo(), [{"instruction": "", "input": "x"}], str(out), 1, progress=False)
  finally:
    os.umask(old)
  assert stat.S_IMODE(out.stat().st_mode) == mode
  assert json.loads(out.read_text())["prediction"] == "x"


@pytest.fixture(scope="module")
def predictor():
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from reliability_helpers import tiny_hint  # pylint: disable=import-outside-toplevel

  from hint_jax.data import vocab as vocab_lib  # pylint: disable=import-outside-toplevel
  from hint_jax.serving import predictor as predictor_lib  # pylint: disable=import-outside-toplevel
  model, params = tiny_hint()
  return predictor_lib.Predictor(model, jax.tree.map(jnp.asarray, params),
                                 vocab_lib.get_vocabulary(), checkpoint_id="flags")


@pytest.mark.parametrize("option,value,allowed", [
    ("max_decode_len", 0, "an integer >= 1"),
    ("num_beams", 0, "an integer >= 1"),
    ("temperature", -0.5, "a finite number > 0"),
    ("top_p", 2.0, "a number in (0, 1]"),
    ("top_k", -1, "an integer >= 0"),
    ("max_decode_len", 2.5, "an integer >= 1"),
])
def test_predictor_rejects_out_of_range_options_before_decoding(predictor, option, value,
                                                                allowed):
  misses = predictor.cache.stats.misses
  with pytest.raises(ValueError) as info:
    predictor.generate(["Say yes."], ["x"], method="sample", **{option: value})
  assert str(info.value).startswith(f"{option} must be {allowed}")
  assert str(info.value).endswith(f"got {value!r}") and "\n" not in str(info.value)
  assert predictor.cache.stats.misses == misses  # refused before any instruction was encoded
