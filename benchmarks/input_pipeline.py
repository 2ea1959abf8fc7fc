"""Input-pipeline benchmark: a generated P3-format dataset, cached once, read as simulated hosts.

    .venv/bin/python benchmarks/input_pipeline.py --out /tmp/input_pipeline.json
    .venv/bin/python benchmarks/input_pipeline.py --out /tmp/quick.json --sizes 20000 \
        --sni_examples 4000 --check_examples 500          # a quick run

For each size N: write N examples as P3 sample jsonl (`p3_sample/templates/*.jsonl`, the format
`p3_hint` reads), cache them (the fields and tokens `hint-jax cache-tasks p3_hint` writes,
tokenized here in batches with the task vocabulary), then start `--hosts` processes at once,
each streaming its `InputShard` of the same global batches: time to first batch (from the
iterator's creation; also from process start, imports included), peak RSS, and exact resume
(batches from `start_step=k` equal the uninterrupted run's, byte for byte).
Throughput: SNI-length examples (instruction ~600, inputs ~250, targets ~20 tokens; lengths
1024/1024/256), one host process at a time pinned to one core, no prefetch thread.
Check: `hint-jax cache-tasks p3_hint` (SeqIO) on a small generated set writes exactly the
records this benchmark writes, and how fast SeqIO tokenizes.
"""
import argparse
import datetime
import hashlib
import json
import os
import pathlib
import platform
import random
import resource
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
P3_LENGTHS = {"instruction": 512, "inputs": 1024, "targets": 256}
SNI_LENGTHS = {"instruction": 1024, "inputs": 1024, "targets": 256}
TEMPLATES = 200


SAMPLE = REPO.parent / "shared" / "data" / "p3_sample" / "templates"


def _template_names() -> list[str]:
  """Real P3 template names (so T0 dataset filters keep them), else generated ones."""
  names = sorted(p.stem for p in SAMPLE.glob("*.jsonl"))
  return (names + [f"gen_{t:04d}" for t in range(TEMPLATES)])[:TEMPLATES]


def _words() -> list[str]:
  root = SAMPLE
  words = set()
  for path in sorted(root.glob("*.jsonl"))[:40]:
    words.update(path.read_text(encoding="utf-8").split())
  return sorted(w for w in words if w.isalpha()) or ["alpha", "beta", "gamma", "delta"]


def generate_p3(root: pathlib.Path, n: int, seed: int = 0) -> float:
  """N records `{template, inputs, targets}` over TEMPLATES prompt files; returns seconds."""
  start, rng, words = time.time(), random.Random(seed), _words()
  out = root / "p3_sample" / "templates"
  out.mkdir(parents=True, exist_ok=True)
  per = [n // TEMPLATES + (t < n % TEMPLATES) for t in range(TEMPLATES)]
  for t, (count, name) in enumerate(zip(per, _template_names())):
    head = " ".join(rng.choices(words, k=8))
    ask = " ".join(rng.choices(words, k=5))
    with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
      for _ in range(count + 5):  # p3.records keeps the last 5 per template for validation
        passage = " ".join(rng.choices(words, k=rng.randint(40, 120)))
        question = " ".join(rng.choices(words, k=rng.randint(6, 14)))
        record = {"template": name, "inputs": f"{head}\n\n{passage}\n\n{ask} "
                  f"{question}?", "targets": " ".join(rng.choices(words, k=rng.randint(1, 4)))}
        f.write(json.dumps(record) + "\n")
  return time.time() - start


def _tokenized(records, vocab, chunk: int = 2000, keep_pretokenized: bool = False):
  """Examples as SeqIO's tokenize + append_eos leave them, then as `hint-jax cache-tasks`
  stores them (by default without the `*_pretokenized` strings)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  instructions, buf = {}, []

  def flush():
    enc = {k: vocab.encode_batch([r[k] for r in buf]) for k in ("inputs", "targets")}
    for i, r in enumerate(buf):
      ex = {}
      for k in ("instruction", "inputs", "targets"):
        ids = (instructions.setdefault(r[k], vocab.encode(r[k])) if k == "instruction"
               else enc[k][i])
        if keep_pretokenized:
          ex[f"{k}_pretokenized"] = r[k]
        ex[k] = np.array(ids + [1], np.int32)
      ex["task"] = r["task"]
      yield ex
    buf.clear()

  for r in records:
    buf.append(r)
    if len(buf) == chunk:
      yield from flush()
  yield from flush()


def cache_p3(root: pathlib.Path, cache_dir: pathlib.Path, name: str = "p3_hint") -> dict:
  from hint_jax.data import cache, p3, vocab  # pylint: disable=import-outside-toplevel
  start = time.time()
  records = p3.records("train", p3.P3Config(p3_dir=root / "p3_sample", fmt="hint"))
  manifest = cache.write_task(cache_dir, name, "train", _tokenized(records, vocab.get_vocabulary()))
  size = sum(p.stat().st_size for p in (cache_dir / name / "train").iterdir())
  return {"examples": manifest["num_examples"], "cache_s": round(time.time() - start, 1),
          "cache_bytes": size, "shards": len(manifest["shards"]),
          "records": sum(s["num_records"] for s in manifest["shards"])}


def _digest(batch: dict) -> str:
  h = hashlib.sha256()
  for k in sorted(batch):
    h.update(k.encode() + batch[k].tobytes())
  return h.hexdigest()


def host_main(spec: dict) -> dict:
  """One simulated host: stream its InputShard, time it, check resume."""
  import psutil  # pylint: disable=import-outside-toplevel
  if spec.get("cpu") is not None:
    os.sched_setaffinity(0, {spec["cpu"]})
  from hint_jax.data import streaming  # pylint: disable=import-outside-toplevel
  rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  kw = {"cache_dir": spec["cache"], "name": spec["name"], "split": "train",
        "feature_lengths": spec["lengths"], "batch_size": spec["batch_size"], "seed": 0,
        "shard_id": spec["index"], "num_shards": spec["count"], "prefetch": spec["prefetch"]}
  start = time.perf_counter()
  it = streaming.train_iterator(**kw)
  digests = [_digest(next(it))]
  first_s = time.perf_counter() - start
  since_start = time.time() - psutil.Process().create_time()
  digests += [_digest(next(it)) for _ in range(spec["steps"] - 1)]
  local_rows = it.local_batch_size
  del it  # one live iterator at a time, as in training
  timed = streaming.train_iterator(**kw, start_step=spec["steps"])  # fresh rows, no hashing
  next(timed)
  start, cpu = time.perf_counter(), time.process_time()
  for _ in range(spec["steps"]):
    next(timed)
  rows = spec["steps"] * local_rows
  rate, cpu_rate = rows / (time.perf_counter() - start), rows / (time.process_time() - cpu)
  blocks_per_example = timed.reader.blocks_read / (rows + local_rows)
  del timed
  k = spec["steps"] // 2
  resumed = streaming.train_iterator(**kw, start_step=k)
  exact = all(_digest(next(resumed)) == d for d in digests[k:])
  return {"host": spec["index"], "first_batch_s": round(first_s, 3),
          "first_batch_since_process_start_s": round(since_start, 2),
          "examples_per_s": round(rate), "examples_per_cpu_s": round(cpu_rate),
          "resume_exact": exact, "resume_step": k,
          "blocks_read_per_example": round(blocks_per_example, 4),
          "rss_after_import_mb": round(rss_import), "peak_rss_mb": round(
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run_hosts(specs: list[dict], parallel: bool) -> list[dict]:
  def start(spec):
    return subprocess.Popen([sys.executable, __file__, "--host", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
  procs, out = [], []
  for spec in specs:
    procs.append(start(spec))
    if not parallel:
      out.append(_result(procs.pop()))
  return out + [_result(p) for p in procs]


def _result(proc) -> dict:
  stdout, stderr = proc.communicate()
  if proc.returncode:
    raise RuntimeError(f"host process failed: {stderr[-2000:]}")
  return json.loads(stdout.strip().splitlines()[-1])


def generate_sni(cache_dir: pathlib.Path, n: int, seed: int = 0) -> dict:
  """SNI-length examples (instruction shared by 100 examples of a task), cached."""
  from hint_jax.data import cache, vocab  # pylint: disable=import-outside-toplevel
  rng, words, start = random.Random(seed), _words(), time.time()
  records = ({"instruction": "Definition: " + " ".join(
      random.Random(f"{seed}/{i // 100}").choices(words, k=420)),
      "inputs": " ".join(rng.choices(words, k=rng.randint(80, 260))),
      "targets": " ".join(rng.choices(words, k=rng.randint(3, 20))),
      "task": f"task{i // 100}"} for i in range(n))
  manifest = cache.write_task(cache_dir, "sni_like", "train",
                              _tokenized(records, vocab.get_vocabulary()))
  return {"examples": manifest["num_examples"], "cache_s": round(time.time() - start, 1)}


def check_seqio(work: pathlib.Path, n: int) -> dict:
  """`hint-jax cache-tasks p3_hint` (SeqIO) vs this benchmark's tokenizer on N examples."""
  from hint_jax.data import cache  # pylint: disable=import-outside-toplevel
  root = work / f"check_{n}"
  generate_p3(root, n, seed=1)
  fast = cache_p3(root, root / "fast")
  start = time.time()
  proc = subprocess.run([sys.executable, "-m", "hint_jax", "cache-tasks", "p3_hint", "--split",
                         "train", "--output_dir", str(root / "seqio")], cwd=REPO, text=True,
                        capture_output=True, env={**os.environ, "HINT_DATA_DIR": str(root)},
                        check=False)
  seqio_s = time.time() - start
  if proc.returncode:
    return {"error": proc.stderr.strip().splitlines()[-1]}

  def records(d):
    m = cache.read_manifest(d, "p3_hint", "train")
    from array_record.python import array_record_module as ar  # pylint: disable=import-outside-toplevel
    for s in m["shards"]:
      reader = ar.ArrayRecordReader(str(d / "p3_hint" / "train" / s["file"]))
      yield from reader.read_all()

  same = all(a == b for a, b in zip(records(root / "fast"), records(root / "seqio")))
  count = cache.read_manifest(root / "seqio", "p3_hint", "train")["num_examples"]
  return {"examples": count, "identical_records": same and count == fast["examples"],
          "seqio_cache_tasks_s": round(seqio_s, 1),
          "seqio_examples_per_s_incl_startup": round(count / seqio_s)}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", help="json file for the results")
  p.add_argument("--sizes", default="100000,1000000")
  p.add_argument("--hosts", type=int, default=4)
  p.add_argument("--batch_size", type=int, default=1024, help="global batch")
  p.add_argument("--steps", type=int, default=24)
  p.add_argument("--sni_examples", type=int, default=20000)
  p.add_argument("--check_examples", type=int, default=2000)
  p.add_argument("--workdir", default="/tmp/hint_input_pipeline_bench")
  p.add_argument("--keep", action="store_true", help="keep the generated data and caches")
  p.add_argument("--host", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.host:
    print(json.dumps(host_main(json.loads(args.host))))
    return
  work = pathlib.Path(args.workdir)
  shutil.rmtree(work, ignore_errors=True)
  results = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
             "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "python": platform.python_version(),
                         "load_avg_at_start": os.getloadavg()},
             "global_batch": args.batch_size, "hosts": args.hosts, "steps": args.steps,
             "p3": {}, "sni_lengths": {}}
  spec = {"batch_size": args.batch_size, "count": args.hosts, "steps": args.steps,
          "prefetch": 0, "name": "p3_hint"}
  for n in (int(s) for s in args.sizes.split(",") if s):
    root = work / f"p3_{n}"
    entry = {"generate_s": round(generate_p3(root, n), 1), **cache_p3(root, root / "cache")}
    entry["hosts"] = run_hosts([{**spec, "cache": str(root / "cache"), "index": i,
                                 "lengths": P3_LENGTHS} for i in range(args.hosts)], True)
    results["p3"][str(n)] = entry
    print(json.dumps({n: entry}), flush=True)
    if not args.keep:
      shutil.rmtree(root / "p3_sample")
  sni = work / "sni"
  entry = generate_sni(sni, args.sni_examples)
  entry["hosts"] = run_hosts([{**spec, "cache": str(sni), "name": "sni_like", "index": i,
                               "lengths": SNI_LENGTHS, "cpu": i % (os.cpu_count() or 1)}
                              for i in range(args.hosts)], False)
  results["sni_lengths"] = entry
  print(json.dumps({"sni_lengths": entry}), flush=True)
  if args.check_examples:
    results["seqio_check"] = check_seqio(work, args.check_examples)
    print(json.dumps({"seqio_check": results["seqio_check"]}), flush=True)
  results["machine"]["load_avg_at_end"] = os.getloadavg()
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
  if not args.keep:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  main()
