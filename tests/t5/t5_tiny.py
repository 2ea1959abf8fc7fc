"""Tiny random T5 models for tests: Hugging Face models saved to disk, random TaskParams."""
import functools

import jax
import numpy as np
import torch
import transformers

from hint_jax.peft import spec
from hint_jax.t5 import T5

transformers.logging.set_verbosity_error()

VOCAB = 61


def hf_config(feed_forward: str = "gated-gelu", num_decoder_layers: int = 2,
              **overrides) -> transformers.T5Config:
  kwargs = {"vocab_size": VOCAB, "d_model": 12, "d_kv": 5, "num_heads": 3, "d_ff": 14, "num_layers": 2,
                "num_decoder_layers": num_decoder_layers, "feed_forward_proj": feed_forward,
                "tie_word_embeddings": feed_forward == "relu", "relative_attention_num_buckets": 8,
                "relative_attention_max_distance": 20, "dropout_rate": 0.0, "decoder_start_token_id": 0}
  return transformers.T5Config(**{**kwargs, **overrides})


def hf_model(config: transformers.T5Config, seed: int = 0, scale: float = 1.0):
  """A random HF T5 in eval mode. `scale` > 1 makes greedy outputs varied (and EOS frequent)."""
  torch.manual_seed(seed)
  model = transformers.T5ForConditionalGeneration(config).eval()
  if scale != 1.0:
    with torch.no_grad():
      for name, p in model.named_parameters():
        if not any(s in name for s in ("layer_norm", "shared", "lm_head")):
          p.mul_(scale)
      if not model.config.scale_decoder_outputs:  # untied head: never pick pad, EOS often
        model.lm_head.weight[0].zero_()
        model.lm_head.weight[1] += 0.5
  return model


def padded_tokens(rng: np.random.Generator, batch: int, length: int, min_len: int = 2):
  """int64 [batch, length] in [2, VOCAB) with random right padding (row 0 unpadded)."""
  tokens = rng.integers(2, VOCAB, (batch, length))
  for r in range(1, batch):
    tokens[r, rng.integers(min_len, length + 1):] = 0
  return tokens


def hf_logits(model, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0).long(),
                 decoder_input_ids=torch.tensor(dec)).logits.numpy()


def hf_generate(model, enc: np.ndarray, max_new_tokens: int, **kwargs) -> np.ndarray:
  """HF generate output in our format: no start token, 0 after the first EOS, width T."""
  with torch.no_grad():
    out = model.generate(torch.tensor(enc), attention_mask=torch.tensor(enc > 0).long(),
                         max_new_tokens=max_new_tokens, do_sample=False, **kwargs).numpy()[:, 1:]
  result = np.zeros((out.shape[0], max_new_tokens), np.int64)
  for r, row in enumerate(out.tolist()):
    row = row[:row.index(1) + 1] if 1 in row else row
    result[r, :len(row)] = row
  return result


PEFT_ALL = spec.PeftConfig(adapter_size=4, prefix_length=2,
                           lora=spec.LoraConfig(rank=3, alpha=6.0, projections=spec.PROJECTIONS))


def random_task_params(dims: spec.BackboneDims, batch: int, seed: int = 0,
                       peft: spec.PeftConfig = PEFT_ALL, scale: float = 0.5) -> spec.TaskParams:
  shapes = spec.task_param_structs(peft, dims, batch)
  leaves, treedef = jax.tree.flatten(shapes)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(treedef, [scale * jax.random.normal(k, s.shape)
                                      for k, s in zip(keys, leaves)])


@functools.cache
def jit_apply(config, method: str = "__call__"):
  """A jitted `T5(config).apply` (eager applies compile op by op and are slower on CPU)."""
  model = T5(config)
  return jax.jit(functools.partial(model.apply, method=method),
                 static_argnames=("enable_dropout", "decode"))
