"""Tiny random T5 models for tests: Hugging Face models saved to disk, random TaskParams."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
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
  rng = np.random.default_rng(seed)  # numpy: eager jax.random compiles per shape (slow on CPU)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), jnp.float32),
                      spec.task_param_structs(peft, dims, batch))


@functools.cache
def jit_apply(config, method: str = "__call__"):
  """A jitted `T5(config).apply` (eager applies compile op by op and are slower on CPU)."""
  model = T5(config)
  return jax.jit(functools.partial(model.apply, method=method),
                 static_argnames=("enable_dropout", "decode"))


def random_params(config, seed: int = 0, std: float = 0.3):
  """Random float32 params for `T5(config)` without compiling `init` (threefry compiles slowly
  on CPU): shapes from `jax.eval_shape`, values from numpy (norm scales near 1)."""
  tokens = jax.ShapeDtypeStruct((1, 2), np.int32)
  shapes = nn.unbox(jax.eval_shape(T5(config).init, jax.random.PRNGKey(0), tokens, tokens))
  rng = np.random.default_rng(seed)
  def fill(path, leaf):
    names = [getattr(p, "key", "") for p in path]
    if names[-1] == "scale":
      return jnp.asarray(1.0 + 0.1 * rng.standard_normal(leaf.shape), jnp.float32)
    scale = 1.0 if names[-1] in ("embedding", "rel_embedding") else std
    return jnp.asarray(scale * rng.standard_normal(leaf.shape), jnp.float32)
  return jax.tree_util.tree_map_with_path(fill, shapes["params"])
