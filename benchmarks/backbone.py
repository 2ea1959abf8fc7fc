"""Backbone speed vs Hugging Face PyTorch on CPU: jitted train step (fwd+bwd) and greedy decode.

Usage: .venv/bin/python benchmarks/backbone.py [--quick] [--out FILE.json] [--threads N]
Both frameworks get the same weights (a random T5.1.1-small saved by transformers and loaded
with `load_hf_t5`) and the same thread count. Timings are medians of interleaved runs.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time


def _parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="smaller batch, fewer repeats")
  parser.add_argument("--out", default=None, help="write the results JSON here")
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  return parser.parse_args()


ARGS = _parse()
os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen=true "
                           f"intra_op_parallelism_threads={ARGS.threads}")

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from hint_jax.models import losses
from hint_jax.t5 import T5, greedy_decode, load_hf_t5

SMALL = {"vocab_size": 32128, "d_model": 512, "d_kv": 64, "num_heads": 6, "d_ff": 1024, "num_layers": 8,
             "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "dropout_rate": 0.0,
             "decoder_start_token_id": 0}


def _median_time(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _interleaved(ours, theirs, repeats, rounds=3):
  """Alternate the two (so load changes on a shared machine hit both); medians of medians."""
  a, b = [], []
  for _ in range(rounds):
    a.append(_median_time(ours, repeats))
    b.append(_median_time(theirs, repeats))
  return statistics.median(a), statistics.median(b)


def _train_step_fns(config, params, hf, batch):
  enc, dec_in, targets = (jnp.asarray(batch[k]) for k in ("enc", "dec_in", "targets"))
  model = T5(config)

  def loss_fn(p):
    logits = model.apply({"params": p}, enc, dec_in)
    return losses.cross_entropy(logits, targets)[0]

  step = jax.jit(jax.value_and_grad(loss_fn))

  def ours():
    jax.block_until_ready(step(params))

  t_enc, t_mask = torch.tensor(batch["enc"]), torch.tensor(batch["enc"] > 0).long()
  t_dec, t_tgt = torch.tensor(batch["dec_in"]), torch.tensor(batch["targets"])
  t_tgt = t_tgt.masked_fill(t_tgt == 0, -100)
  hf.train()

  def theirs():
    hf.zero_grad(set_to_none=True)
    out = hf(input_ids=t_enc, attention_mask=t_mask, decoder_input_ids=t_dec, labels=t_tgt)
    out.loss.backward()

  return ours, theirs


def _decode_fns(config, params, hf, enc, max_len):
  result = {}

  def ours():
    result["ours"] = np.asarray(greedy_decode(config, params, enc, max_len))

  t_enc, t_mask = torch.tensor(enc), torch.tensor(enc > 0).long()

  def theirs():
    with torch.no_grad():
      result["hf"] = hf.generate(t_enc, attention_mask=t_mask, max_new_tokens=max_len,
                                 do_sample=False, num_beams=1).numpy()

  return ours, theirs, result


def _measure_decode(config, params, hf, enc, decode_len, repeats):
  """(our time, HF time, identical tokens) for greedy decoding of `enc`."""
  ours, theirs, out = _decode_fns(config, params, hf, enc, decode_len)
  ours()
  theirs()  # warm-up (compile)
  t_ours, t_hf = _interleaved(ours, theirs, repeats)
  hf_tokens = out["hf"][:, 1:]  # drop the start token; HF stops early when all rows hit EOS
  hf_tokens = np.pad(hf_tokens, ((0, 0), (0, decode_len - hf_tokens.shape[1])))
  same = bool((out["ours"] == hf_tokens).all())
  return t_ours, t_hf, same


def main():
  torch.set_num_threads(ARGS.threads)
  transformers.logging.set_verbosity_error()
  quick = ARGS.quick
  batch, enc_len, dec_len = (4, 64, 16) if quick else (8, 128, 32)
  decode_len, repeats = (16, 2) if quick else (32, 3)
  torch.manual_seed(0)
  hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**SMALL))
  with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    config, params = load_hf_t5(tmp)
  config = config.__class__(**{**config.__dict__, "dropout_rate": 0.0})
  params = jax.device_put(params)
  rng = np.random.default_rng(0)
  enc = rng.integers(2, 32000, (batch, enc_len))
  targets = rng.integers(2, 32000, (batch, dec_len))
  dec_in = np.concatenate([np.zeros((batch, 1), np.int64), targets[:, :-1]], axis=1)
  data = {"enc": enc, "dec_in": dec_in, "targets": targets}

  ours_train, hf_train = _train_step_fns(config, params, hf, data)
  ours_train()
  hf_train()  # warm-up (compile / allocator)
  t_ours_train, t_hf_train = _interleaved(ours_train, hf_train, repeats)

  hf.eval()
  t_ours_dec, t_hf_dec, same = _measure_decode(config, params, hf, enc, decode_len, repeats)
  # Latency regime: one short request, where per-step framework overhead dominates.
  t_ours_1, t_hf_1, same_1 = _measure_decode(config, params, hf, enc[:1, :32], decode_len,
                                             repeats)

  results = {
      "train_step_speedup_vs_hf": t_hf_train / t_ours_train,
      "greedy_decode_speedup_vs_hf": t_hf_dec / t_ours_dec,
      "ours_train_step_s": t_ours_train, "hf_train_step_s": t_hf_train,
      "ours_greedy_decode_s": t_ours_dec, "hf_greedy_decode_s": t_hf_dec,
      "greedy_tokens_identical": same and same_1,
      "greedy_decode_batch1_speedup_vs_hf": t_hf_1 / t_ours_1,
      "ours_greedy_decode_batch1_s": t_ours_1, "hf_greedy_decode_batch1_s": t_hf_1,
      "shapes": {"batch": batch, "encoder_length": enc_len, "decoder_length": dec_len,
                 "decode_length": decode_len, "batch1_encoder_length": 32},
      "model": "t5-v1_1-small dims (random weights)", "threads": ARGS.threads, "quick": quick,
      "versions": {"jax": jax.__version__, "torch": torch.__version__,
                   "transformers": transformers.__version__},
      "machine": platform.platform(), "cpu_count": os.cpu_count(),
      "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
  }
  print(json.dumps(results, indent=2))
  if ARGS.out:
    with open(ARGS.out, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
