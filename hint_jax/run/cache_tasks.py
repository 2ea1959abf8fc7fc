"""`hint-jax cache-tasks`: tokenize registered tasks and mixtures once into an ArrayRecord cache.

  hint-jax cache-tasks p3_hint sni_def_2pos_hint --split=train --output_dir=/data/hint_cache
  hint-jax cache-tasks sni_p3_hint --split=train --output_dir=gs-mounted/hint_cache

A mixture caches each of its tasks under the task's own name and records the mixing rates;
T0's capped `examples_rate` is evaluated from the cached counts (no second read). A task whose
split is already cached is skipped unless `--overwrite`. Training reads the cache with
`DataConfig.cache_dir` (see `hint_jax/data/streaming.py`).
"""
import argparse
import functools
import sys
import time
from collections.abc import Iterator, Sequence

from hint_jax.data import cache, pipeline
from hint_jax.data import features as F


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="hint-jax cache-tasks",
                              description="Tokenize SeqIO tasks/mixtures once into ArrayRecord "
                                          "shards for the streaming training pipeline.")
  p.add_argument("names", nargs="+", help="registered task or mixture names")
  p.add_argument("--split", default="train")
  p.add_argument("--output_dir", required=True, help="cache root (DataConfig.cache_dir)")
  p.add_argument("--examples_per_shard", type=int, default=cache.DEFAULT_EXAMPLES_PER_SHARD)
  p.add_argument("--examples_per_block", type=int, default=cache.DEFAULT_EXAMPLES_PER_BLOCK,
                 help="consecutive examples per ArrayRecord record (the streaming read unit)")
  p.add_argument("--compression", choices=cache.COMPRESSION, default="uncompressed",
                 help="zstd: smaller files, slower reads (worth it with --keep_pretokenized)")
  p.add_argument("--keep_pretokenized", action="store_true",
                 help="also store the `*_pretokenized` strings (training needs only tokens)")
  p.add_argument("--overwrite", action="store_true", help="re-cache tasks already cached")
  return p


def tokenized_examples(name: str, split: str, keep_pretokenized: bool = True
                       ) -> Iterator[dict]:
  """A task split as `pipeline.load_task` reads it, one example at a time."""
  return pipeline.iter_task(name, split, keep_pretokenized)


def _rate(mixture, task, count: int, split: str) -> float:
  """The task's mixing rate; T0's `examples_rate(cap)` from the cached count of `train`."""
  rate = mixture.rate_per_task_name.get(task.name)
  if (isinstance(rate, functools.partial) and split == "train"
      and getattr(rate.func, "__name__", "") == "examples_rate"):
    cap = rate.keywords.get("cap")
    return float(min(count, cap) if cap else count)
  return float(mixture.get_rate(task))


def _cache_task(name: str, args, log) -> int:
  if not args.overwrite:
    try:
      count = cache.read_manifest(args.output_dir, name, args.split)["num_examples"]
      log(f"{name}/{args.split}: already cached ({count} examples); --overwrite to redo")
      return count
    except cache.CacheError:
      pass
  vocab = pipeline.registry().get_mixture_or_task(name).output_features[F.TARGETS].vocabulary
  manifest = cache.write_task(
      args.output_dir, name, args.split,
      tokenized_examples(name, args.split, args.keep_pretokenized),
      args.examples_per_shard, args.compression, log,
      extra={"vocabulary": str(getattr(vocab, "sentencepiece_model_file", type(vocab))),
             "pretokenized": args.keep_pretokenized},
      examples_per_block=args.examples_per_block)
  return manifest["num_examples"]


def cache_names(args: argparse.Namespace, log=print) -> dict[str, int]:
  """Caches every name of `args.names`; returns {task: examples}."""
  import hint_jax_tasks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  # registers
  seqio = pipeline.registry()
  known = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
  unknown = [n for n in args.names if n not in known]
  if unknown:
    raise ValueError(f"unknown task or mixture {', '.join(map(repr, unknown))}; available: "
                     f"{', '.join(sorted(known))}")
  counts: dict[str, int] = {}
  for name in args.names:
    if name in seqio.TaskRegistry.names():
      counts[name] = _cache_task(name, args, log)
      continue
    mixture = seqio.get_mixture_or_task(name)
    for task in mixture.tasks:
      counts[task.name] = counts.get(task.name) or _cache_task(task.name, args, log)
    rates = [(t.name, _rate(mixture, t, counts[t.name], args.split)) for t in mixture.tasks]
    cache.write_mixture(args.output_dir, name, args.split, rates)
    log(f"{name}/{args.split}: mixture of {len(rates)} tasks, rates "
        f"{', '.join(f'{t}={r:g}' for t, r in rates)}")
  return counts


def main(argv: Sequence[str]) -> int:
  """Entry point of `hint-jax cache-tasks`; returns the exit status."""
  args = parser().parse_args(list(argv))
  start = time.time()

  def log(message: str) -> None:
    print(f"cache-tasks: {message}", file=sys.stderr, flush=True)

  try:
    counts = cache_names(args, log)
  except (OSError, ValueError) as e:  # CacheError is a ValueError
    print(f"hint-jax: error: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
    return 1
  print(f"hint-jax: done: cached {sum(counts.values())} examples of {len(counts)} task(s) "
        f"in {args.output_dir} ({time.time() - start:.0f}s)")
  return 0
