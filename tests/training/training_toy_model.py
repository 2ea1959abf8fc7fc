"""A tiny seq2seq `Model` (backbone + hypernet subtrees) for trainer tests, and its batches."""
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hint_jax import axes
from hint_jax.data import features as F

VOCAB, EMBED, MLP = 32, 8, 16


def _param(module, name, shape, names, scale=0.3):
  init = nn.with_logical_partitioning(nn.initializers.normal(scale), names)
  return module.param(name, init, shape)


class _Hypernet(nn.Module):
  @nn.compact
  def __call__(self, table_TI):
    emb = _param(self, "embedding", (VOCAB, EMBED), (axes.VOCAB, axes.EMBED))
    wi = _param(self, "wi", (EMBED, MLP), (axes.EMBED, axes.MLP))
    wo = _param(self, "wo", (MLP, EMBED), (axes.MLP, axes.EMBED))
    mask = (table_TI > 0)[..., None]
    pooled_TD = (emb[table_TI] * mask).sum(-2) / jnp.maximum(mask.sum(-2), 1)
    return jax.nn.gelu(pooled_TD @ wi) @ wo


class _Backbone(nn.Module):
  @nn.compact
  def __call__(self, batch, task_BD, rng_dropout):
    emb = _param(self, "embedding", (VOCAB, EMBED), (axes.VOCAB, axes.EMBED))
    wi = _param(self, "wi", (EMBED, MLP), (axes.EMBED, axes.MLP))
    wo = _param(self, "wo", (MLP, EMBED), (axes.MLP, axes.EMBED))
    out = _param(self, "logits", (EMBED, VOCAB), (axes.EMBED, axes.VOCAB))
    enc = batch[F.ENCODER_INPUT_TOKENS]
    mask = (enc > 0)[..., None]
    pooled_BD = (emb[enc] * mask).sum(1) / jnp.maximum(mask.sum(1), 1)
    h_BTD = emb[batch[F.DECODER_INPUT_TOKENS]] + (pooled_BD + task_BD)[:, None]
    h_BTF = jax.nn.gelu(h_BTD @ wi)
    if rng_dropout is not None:
      keep = jax.random.bernoulli(rng_dropout, 0.9, h_BTF.shape)
      h_BTF = jnp.where(keep, h_BTF / 0.9, 0.0)
    return (h_BTD + h_BTF @ wo) @ out


class _Net(nn.Module):
  def setup(self):
    self.backbone = _Backbone()
    self.hypernet = _Hypernet()

  def __call__(self, batch, rng_dropout=None):
    task_TD = self.hypernet(batch[F.HYPER_ENCODER_INPUT_TOKENS])
    return self.backbone(batch, _task_rows(task_TD, batch[F.TASK_INDEX]), rng_dropout)


def _task_rows(task_TD, index_B):
  """Each example's task row; a grouped [G, R, D] table (`batches.group_task_rows`) is read
  within each example's group of B / G consecutive examples, as `HintModel` reads it."""
  if task_TD.ndim == 2:
    return task_TD[index_B]
  groups, rows = task_TD.shape[:2]
  group_B = jnp.arange(index_B.shape[0]) // (index_B.shape[0] // groups)
  return task_TD.reshape(groups * rows, -1)[group_B * rows + index_B]


class ToyModel:
  """Implements `hint_jax.models.interface.Model` with a 3-layer toy network."""

  def __init__(self, z_loss: float = 1e-4, dropout: bool = True):
    self.net = _Net()
    self.z_loss = z_loss
    self.dropout = dropout

  def init(self, rng_init, batch):
    return self.net.init(rng_init, batch)["params"]

  def loss_fn(self, params, batch, rng_dropout):
    rng_dropout = rng_dropout if self.dropout else None
    logits = self.net.apply({"params": params}, batch, rng_dropout).astype(jnp.float32)
    targets = batch[F.DECODER_TARGET_TOKENS]
    weights = batch[F.DECODER_LOSS_WEIGHTS].astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, -1)
    nll = lse - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
    z = self.z_loss * lse ** 2
    aux = {"loss_sum": ((nll + z) * weights).sum(), "weight_sum": weights.sum(),
           "z_loss": (z * weights).sum(), "cross_entropy_sum": (nll * weights).sum(),
           "correct_sum": ((logits.argmax(-1) == targets) * weights).sum()}
    return aux["loss_sum"] / jnp.maximum(aux["weight_sum"], 1.0), aux

  def score_fn(self, params, batch):
    logits = self.net.apply({"params": params}, batch).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits)
    ll = jnp.take_along_axis(logp, batch[F.DECODER_TARGET_TOKENS][..., None], -1)[..., 0]
    return (ll * batch[F.DECODER_LOSS_WEIGHTS]).sum(-1)

  def predict_batch(self, params, batch, *, max_decode_len, **decode_options):
    del decode_options
    logits = self.net.apply({"params": params}, batch)
    return logits.argmax(-1)[:, :max_decode_len].astype(jnp.int32)

  def param_labels(self, params):
    return {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()}


def make_batch(step: int, batch_size: int = 16, seed: int = 0, num_tasks: int = 4,
               lengths=(6, 5, 4)) -> dict[str, np.ndarray]:
  """A deterministic batch for `step`: targets are a task-dependent function of the inputs."""
  rng = np.random.default_rng([seed, step])
  length, tlen, ilen = lengths
  table = rng.integers(3, VOCAB, (num_tasks, ilen)).astype(np.int32)
  task = rng.integers(0, num_tasks, batch_size).astype(np.int32)
  enc = rng.integers(3, VOCAB, (batch_size, length)).astype(np.int32)
  enc[:, -1] = np.where(rng.random(batch_size) < 0.5, 0, enc[:, -1])
  targets = ((enc[:, :tlen] + table[task, :1]) % (VOCAB - 3) + 3).astype(np.int32)
  targets[:, -1] = F.EOS_ID
  weights = np.ones_like(targets, dtype=np.int32)
  weights[rng.random(batch_size) < 0.25, -2:] = 0
  dec_in = np.concatenate([np.zeros((batch_size, 1), np.int32), targets[:, :-1]], 1)
  return {F.HYPER_ENCODER_INPUT_TOKENS: table, F.TASK_INDEX: task,
          F.ENCODER_INPUT_TOKENS: enc, F.DECODER_INPUT_TOKENS: dec_in,
          F.DECODER_TARGET_TOKENS: targets, F.DECODER_LOSS_WEIGHTS: weights}


def source(batch_size: int = 16, seed: int = 0, num_tasks: int = 4):
  """`data(start_step, shard)` over `make_batch`, yielding the shard's rows of each global
  batch."""
  def data(start_step, shard):
    for s in itertools.count(start_step):
      b = make_batch(s, batch_size, seed, num_tasks)
      n = batch_size // shard.count
      rows = slice(shard.index * n, (shard.index + 1) * n)
      local = {k: (v if k == F.HYPER_ENCODER_INPUT_TOKENS else v[rows]) for k, v in b.items()}
      # Each shard holds its own (here: rotated) task table with indices into it, as the
      # real pipeline does.
      perm = np.roll(np.arange(num_tasks), shard.index)
      local[F.HYPER_ENCODER_INPUT_TOKENS] = b[F.HYPER_ENCODER_INPUT_TOKENS][perm]
      local[F.TASK_INDEX] = np.argsort(perm)[local[F.TASK_INDEX]].astype(np.int32)
      yield local
  return data
