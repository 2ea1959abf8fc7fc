"""The host training loop: mesh, sharded init/restore, jitted step, checkpoints, eval, metrics."""
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax
from flax import traverse_util
from jax.sharding import Mesh

from hint_jax.models import interface
from hint_jax.parallel import mesh as mesh_lib
from hint_jax.parallel import partitioner as partitioner_lib
from hint_jax.parallel import sharding
from hint_jax.training import batches as batches_lib
from hint_jax.training import checkpoint, evaluate, optim, partial_restore, preemption
from hint_jax.training import config as config_lib
from hint_jax.training import metrics as metrics_lib
from hint_jax.training import state as state_lib
from hint_jax.training import step as step_lib

HostBatch = Mapping[str, np.ndarray]
_LOG = logging.getLogger(__name__)
# (start step, this process's input shard) -> its rows of each global batch from that step on
Preempted = preemption.Preempted  # what `train` raises on SIGTERM/SIGINT
BatchSource = Callable[[int, batches_lib.InputShard], Iterator[HostBatch]]


class NonFiniteLossError(RuntimeError):
  """Training met a non-finite loss or gradient and `skip_nonfinite` is off."""


@dataclasses.dataclass
class Setup:
  """What the loop needs beyond the state: compiled pieces and their shardings."""
  mesh: Mesh
  tx: Any
  schedule: Any
  abstract: state_lib.TrainState
  shardings: state_lib.TrainState
  batch_shardings: dict[str, Any]
  partitioner: partitioner_lib.Partitioner | None = None
  num_microbatches: int = 1
  global_batch_size: int = 0  # examples per step, all processes together

  def prepare(self, local: HostBatch) -> dict[str, np.ndarray]:
    """This process's host batch as the step takes it: one instruction table per data shard
    and microbatch (`batches.group_task_rows`)."""
    return batches_lib.group_task_rows(local, batches_lib.local_data_shards(self.mesh),
                                       self.num_microbatches)

  def to_global(self, local: HostBatch) -> dict[str, jax.Array]:
    return batches_lib.to_global(self.prepare(local), self.batch_shardings)


def build_setup(cfg: config_lib.TrainConfig, model: interface.Model, example: HostBatch,
                mesh: Mesh) -> Setup:
  """Abstract state and its shardings from shapes alone (nothing is materialised).

  `example` is a host batch as the data source yields it (arrays or ShapeDtypeStructs).
  """
  rules = cfg.mesh.rules
  partitioner = partitioner_lib.Partitioner(mesh, rules)
  example = batches_lib.group_task_rows(_zeros_like(example),
                                        batches_lib.local_data_shards(mesh),
                                        cfg.num_microbatches)
  rng = jax.eval_shape(jax.random.PRNGKey, 0)
  boxed = jax.eval_shape(model.init, rng, example)
  sharding.check_param_axes(boxed, rules)
  param_sh = sharding.logical_shardings(boxed, mesh, rules)
  sharding.warn_replicated(boxed, param_sh, mesh)
  tx, schedule = optim.make_optimizer(cfg.optim)
  abstract = jax.eval_shape(functools.partial(state_lib.create, cfg.optim, tx),
                            nn.unbox(boxed), rng)
  trainable_sh, frozen_sh = state_lib.split_params(cfg.optim, param_sh)
  flat = sharding.flat_with_shapes(trainable_sh, abstract.trainable)
  rep = sharding.replicated(mesh)
  shardings = state_lib.TrainState(
      step=rep, trainable=trainable_sh, frozen=frozen_sh,
      opt_state=sharding.shardings_like(abstract.opt_state, flat, mesh), rng=rep, skipped=rep)
  batch_sh = batches_lib.feature_shardings(example, mesh, rules)
  global_batch = (metrics_lib.count_examples(example)
                  * batches_lib.input_shard(mesh).count)
  return Setup(mesh, tx, schedule, abstract, shardings, batch_sh, partitioner,
               cfg.num_microbatches, global_batch)


def _zeros_like(example: HostBatch) -> dict[str, np.ndarray]:
  """Host arrays (zeros for ShapeDtypeStructs) with the example's shapes and dtypes."""
  return {k: v if isinstance(v, np.ndarray) else np.zeros(v.shape, v.dtype)
          for k, v in example.items()}


def _fresh_state(cfg, model, setup: Setup, example: HostBatch,
                 pretrained: Mapping[str, Any] | None) -> state_lib.TrainState:
  def init_fn():
    rng_init, rng_train = jax.random.split(jax.random.PRNGKey(cfg.seed))
    params = nn.unbox(model.init(rng_init, example))
    return state_lib.create(cfg.optim, setup.tx, params, rng_train)

  state = setup.partitioner.jit(init_fn, out_shardings=setup.shardings)()
  if pretrained is not None:
    params, chosen = partial_restore.restore_matching(state.params(), pretrained,
                                                     cfg.init_patterns)
    trainable, frozen = state_lib.split_params(cfg.optim, params)
    state = state.replace(trainable=trainable, frozen=frozen)
    opt_state, why = _pretrained_opt_state(cfg, setup, state, pretrained, chosen)
    if opt_state is None:
      _LOG.info("init (fresh run): fresh optimizer state: %s", why)
    else:
      _LOG.info("init (fresh run): optimizer state from %s (statistics and their step counts; "
                "this run's step and learning-rate schedule start at 0)", why)
      state = state.replace(opt_state=opt_state)
  return state


def _pretrained_opt_state(cfg, setup: Setup, state: state_lib.TrainState,
                          pretrained: Mapping[str, Any], chosen: Sequence[str]
                          ) -> tuple[Any, str]:
  """(optimizer state, where from) of the checkpoint `pretrained` came from, or (None, why
  not) (`TrainConfig.init_optimizer_state`).

  Taken only when every trainable parameter came from that checkpoint in the same layer layout
  and the saved optimizer state has this run's structure and shapes. Its statistics keep their
  own step counts (Adafactor's second-moment decay, Adam's bias correction); the schedule's
  count (`optax.ScaleByScheduleState`) restarts at this run's step 0.
  """
  if not cfg.init_optimizer_state:
    return None, "TrainConfig.init_optimizer_state is off"
  if not isinstance(pretrained, (checkpoint.PretrainedParams, partial_restore.CheckpointParams)):
    return None, "the initial parameters carry no optimizer state (e.g. Hugging Face weights)"
  trainable = list(traverse_util.flatten_dict(state.trainable, sep="/"))
  taken = set(chosen)
  left = [k for k in trainable if k not in taken]
  if left:
    return None, (f"init_patterns {list(cfg.init_patterns)} leave {len(left)} of "
                  f"{len(trainable)} trainable parameters fresh (e.g. {left[0]}), whose "
                  "statistics the checkpoint does not hold")
  converted = [k for k in trainable if k not in pretrained]
  if converted:
    return None, (f"checkpoint {pretrained.directory} stores the layers in the other layout "
                  f"(T5Config.scan_layers; e.g. {converted[0]}); optimizer statistics are not "
                  "converted between layouts")
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        setup.abstract.opt_state, setup.shardings.opt_state)
  restored, why = checkpoint.load_opt_state(pretrained.directory, pretrained.step, target)
  if restored is None:
    return None, f"{why}; this run: {checkpoint.optim_signature(cfg.full_signature())!r}"
  def is_schedule(x):
    return isinstance(x, optax.ScaleByScheduleState)
  restored = jax.tree.map(lambda r, f: f if is_schedule(r) else r, restored, state.opt_state,
                          is_leaf=is_schedule)
  return restored, f"checkpoint {pretrained.directory} step {pretrained.step}"


def init_or_restore(cfg, model, setup, example, ckpt: checkpoint.Checkpointer,
                    pretrained: Mapping[str, Any] | None) -> tuple[state_lib.TrainState, int]:
  """(state, data step): the latest checkpoint of `model_dir` if any, else a fresh state, and
  the data step to continue at (the checkpoint's examples consumed / this run's batch size).

  Raises:
    ValueError: see `data_start`.
  """
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        setup.abstract, setup.shardings)
  restored = ckpt.restore_latest(target)  # skips (and reports) corrupted newer steps
  if restored is None:
    return _fresh_state(cfg, model, setup, example, pretrained), 0
  step, state, meta = restored
  if "data_examples" not in meta:  # older checkpoints: steps of an unrecorded batch size
    return state, int(meta.get("data_step", step))
  return state, data_start(int(meta["data_examples"]), setup.global_batch_size,
                           meta.get("global_batch_size"))


def data_start(examples: int, batch_size: int, saved_batch_size: int | None) -> int:
  """The data step to resume at after `examples` consumed, at global batch size `batch_size`.

  Raises:
    ValueError: the batch size changed and does not divide the examples consumed (resuming
      would skip or repeat examples).
  """
  if examples % batch_size:
    raise ValueError(
        f"cannot resume at global batch size {batch_size}: the checkpoint consumed {examples} "
        f"examples at batch size {saved_batch_size}, not a multiple of {batch_size}; resume "
        f"with batch size {saved_batch_size} (or a divisor of {examples})")
  return examples // batch_size


def compile_step(cfg, model, setup: Setup) -> partitioner_lib.Jitted:
  """The jitted train step, traced under the mesh and axis rules (activation constraints on)."""
  train_step = step_lib.make_train_step(model, setup.tx, setup.schedule, cfg.num_microbatches)
  return setup.partitioner.jit(
      train_step, in_shardings=(setup.shardings, setup.batch_shardings),
      out_shardings=(setup.shardings, setup.partitioner.replicated()), donate_argnums=(0,))


def lower_step(cfg: config_lib.TrainConfig, model: interface.Model, example: HostBatch
               ) -> jax.stages.Lowered:
  """The train step `train` would run, lowered from shapes alone (nothing is allocated).

  For memory and sharding checks of configurations larger than the machine
  (`benchmarks/pod_memory.py`): `.compile().memory_analysis()` gives per-device bytes.

  Args:
    cfg: the run (its mesh is built over the visible, e.g. simulated, devices).
    model: the model.
    example: one host batch as the data source yields it (arrays or ShapeDtypeStructs).
  """
  setup = build_setup(cfg, model, example, mesh_lib.build(cfg.mesh))
  prepared = setup.prepare(_zeros_like(example))
  n = jax.process_count()
  batch = {k: jax.ShapeDtypeStruct((v.shape[0] * n,) + v.shape[1:], v.dtype,
                                   sharding=setup.batch_shardings[k])
           for k, v in prepared.items()}
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                       setup.abstract, setup.shardings)
  return compile_step(cfg, model, setup).lower(state, batch)


class _Tracker:
  """Fetches step n's metrics after step n+1 is dispatched; logs, checks finiteness."""

  def __init__(self, cfg, reporter: metrics_lib.Reporter, flops_per_step: float | None,
               peak_flops: float | None, ckpt: checkpoint.Checkpointer):
    self.cfg, self.reporter, self.ckpt = cfg, reporter, ckpt
    self.flops, self.peak = flops_per_step, peak_flops
    self.pending: list[tuple[int, Any, int, int]] = []
    self.window_start, self.window_tokens, self.window_examples, self.window_steps = (
        time.perf_counter(), 0, 0, 0)
    self.last_good = ckpt.latest_step()

  def push(self, step: int, device_metrics: Any, tokens: int, examples: int) -> None:
    self.pending.append((step, device_metrics, tokens, examples))

  def flush(self, keep_last: bool = False) -> None:
    while len(self.pending) > (1 if keep_last else 0):
      step, m, tokens, examples = self.pending.pop(0)
      self._log(step, jax.device_get(m), tokens, examples)

  def _log(self, step: int, m: Mapping[str, Any], tokens: int, examples: int) -> None:
    if not m["finite"] and not self.cfg.skip_nonfinite:
      raise NonFiniteLossError(
          f"non-finite loss ({float(m['loss'])}) or gradient norm ({float(m['grad_norm'])}) at "
          f"step {step}; stopped without saving. Last good checkpoint: step {self.last_good} in "
          f"{self.ckpt.directory} (set skip_nonfinite to skip such batches instead)")
    n = jax.process_count()
    self.window_tokens += tokens * n
    self.window_examples += examples * n
    self.window_steps += 1
    scalars = {k: float(v) for k, v in m.items() if k not in ("finite", "weight_sum")}
    self.reporter.advance(1, {"loss": scalars["loss"]})
    if step % self.cfg.log_every and step != self.cfg.train_steps:
      return
    elapsed = max(time.perf_counter() - self.window_start, 1e-9)
    step_time = elapsed / self.window_steps
    scalars.update(step_time=step_time, tokens_per_s=self.window_tokens / elapsed,
                   examples_per_s=self.window_examples / elapsed)
    if self.flops and self.peak:
      scalars["mfu"] = self.flops / step_time / self.peak
    self.reporter.scalars(step, {f"train/{k}": v for k, v in scalars.items()})
    self.window_start, self.window_tokens, self.window_examples, self.window_steps = (
        time.perf_counter(), 0, 0, 0)


def _save(ckpt, tracker: _Tracker, state, step: int, data_step: int, batch_size: int,
          extra_meta: Mapping[str, Any]) -> None:
  """Saves `state` with the data position: `data_step` batches of `batch_size` consumed."""
  tracker.flush()  # never save a state whose step has not been checked for finiteness
  ckpt.save(step, state, {**extra_meta, "data_step": data_step,
                          "data_examples": data_step * batch_size,
                          "global_batch_size": batch_size})
  tracker.last_good = step


def _maybe_eval(cfg, step: int, state, eval_fn, reporter, force: bool = False) -> None:
  if eval_fn is None or not (force or (cfg.eval_every and step % cfg.eval_every == 0)):
    return
  values = eval_fn(state.params(), step)
  reporter.scalars(step, {f"eval/{k}": v for k, v in values.items()})


def train(cfg: config_lib.TrainConfig, model: interface.Model, data: BatchSource,
          eval_data: Callable[[], Iterable[HostBatch]] | None = None,
          eval_callbacks: Sequence[evaluate.EvalCallback] = (),
          pretrained: Mapping[str, Any] | None = None,
          extra_meta: Mapping[str, Any] | None = None) -> state_lib.TrainState:
  """Trains `model` to `cfg.train_steps`, resuming from `cfg.model_dir` when it has checkpoints.

  Args:
    cfg: the run.
    model: anything implementing `models.interface.Model`.
    data: `data(start_step, shard)` yields block `shard.index` of `shard.count` equal blocks of
      rows of each global batch, starting at batch `start_step` (so a resumed run sees the
      batches an uninterrupted one would). `shard` is `batches.input_shard(mesh)`: processes
      that share data-parallel rows (a model axis across hosts) get the same block.
    eval_data: returns a fresh iterable of this process's eval batches.
    eval_callbacks: extra metrics `callback(params, step) -> {name: value}` (e.g. generation).
    pretrained: flat {path: array} source for `cfg.init_patterns` (fresh runs only).
    extra_meta: json-able values stored with every checkpoint (e.g. the gin config).

  Returns:
    The final state.

  Raises:
    NonFiniteLossError: a non-finite step with `skip_nonfinite` off (last good checkpoint kept).
    Preempted: SIGTERM or SIGINT arrived; the step in progress finished and was saved (the
      checkpoint is complete when this is raised), so running again resumes exactly there.
  """
  mesh = mesh_lib.build(cfg.mesh)
  ckpt = checkpoint.Checkpointer(cfg.model_dir + "/checkpoints", cfg.checkpoint,
                                 cfg.full_signature())
  start = ckpt.latest_step() or 0
  shard = batches_lib.input_shard(mesh)
  batches = data(start, shard)
  example = next(batches)
  setup = build_setup(cfg, model, example, mesh)
  state, data_step = init_or_restore(cfg, model, setup, example, ckpt, pretrained)
  if data_step != start:  # the checkpoint records the data position explicitly
    batches, example = data(data_step, shard), None
  batches = batches if example is None else itertools.chain([example], batches)
  step_fn = compile_step(cfg, model, setup)
  eval_fn = evaluate.make_evaluator(model, setup.mesh, cfg.mesh.rules, eval_data,
                                    eval_callbacks, cfg.eval_batches)
  reporter = metrics_lib.Reporter(cfg.model_dir, cfg.train_steps, int(jax.device_get(state.step)),
                                  cfg.progress_bar)
  try:
    with preemption.StopRequest().installed() as stop:
      state = _run(cfg, state, step_fn, batches, data_step, setup, ckpt, reporter, eval_fn,
                   dict(extra_meta or {}), stop)
  finally:
    ckpt.close()
    reporter.close()
  return state


def _run(cfg, state, step_fn, batches, data_step: int, setup: Setup, ckpt, reporter, eval_fn,
         meta, stop: preemption.StopRequest):
  """Steps from the state's step to `train_steps`, checkpointing and evaluating on the way.

  `batches` starts at batch `data_step` of the data stream; `stop` is checked after each step.
  """
  first = int(jax.device_get(state.step)) + 1
  if first > cfg.train_steps:
    return state
  tracker, compiled = None, {}
  for step in range(first, cfg.train_steps + 1):
    local = next(batches)
    batch = setup.to_global(local)
    shapes = tuple((k, v.shape) for k, v in sorted(batch.items()))
    if shapes not in compiled:  # ahead of time, once per batch shape (a grouped HINT stream's
      compiled[shapes] = step_fn.lower(state, batch).compile()  # rare full-size table)
    if tracker is None:  # the FLOPs of the first shape's step
      tracker = _Tracker(cfg, reporter, metrics_lib.compiled_flops(compiled[shapes]),
                         cfg.peak_flops or metrics_lib.measure_peak_flops(), ckpt)
    state, m = compiled[shapes](state, batch)
    tracker.push(step, m, metrics_lib.count_tokens(local), metrics_lib.count_examples(local))
    tracker.flush(keep_last=True)
    period = cfg.checkpoint.period
    signum = stop.stop_after(step)
    if step == cfg.train_steps or (period and step % period == 0) or signum is not None:
      _save(ckpt, tracker, state, step, data_step + step - first + 1,
            setup.global_batch_size, meta)
    if signum is not None and step < cfg.train_steps:
      ckpt.wait()
      raise preemption.Preempted(signum, step, str(ckpt.directory))
    _maybe_eval(cfg, step, state, eval_fn, reporter, force=step == cfg.train_steps)
  tracker.flush()
  return state
