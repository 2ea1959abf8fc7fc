"""TrainConfig: the typed, frozen description of one training run (built by `hint_jax.run`)."""
import dataclasses

from hint_jax.parallel import mesh as mesh_lib
from hint_jax.training import checkpoint as checkpoint_lib
from hint_jax.training import optim as optim_lib


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run.

  Attributes:
    model_dir: checkpoints, TensorBoard events and the operative config go here.
    train_steps: optimizer steps to reach (a resumed run continues up to it).
    optim: optimizer, schedule, freezing and groups.
    mesh: device mesh and logical-axis rules.
    checkpoint: save period, keep-N, async.
    num_microbatches: gradient accumulation: each batch is split into this many microbatches.
    seed: model seed (init and dropout); the data seed belongs to the data pipeline.
    log_every: write training metrics every this many steps.
    eval_every: evaluate every this many steps (0: only at the end, if eval data is given).
    eval_batches: number of eval batches per evaluation (None: the whole eval iterator).
    skip_nonfinite: drop updates whose loss or gradient is non-finite and count them instead of
      stopping the run.
    init_patterns: path regexes taken from the pretrained params given to `train` (e.g.
      ('backbone/.*',)); applied only to a fresh run, never on resume.
    init_optimizer_state: when the pretrained params come from another hint_jax run
      (`init_from_checkpoint`) and give every trainable parameter, also take that run's
      optimizer state (Adafactor or Adam statistics and their step counts), as the original
      does when fine-tuning from hyper-pretraining (`gins/full_restore.gin`). Falls back to a
      fresh optimizer state, with one log line saying why, when the optimizer, frozen set or
      layer layout (`T5Config.scan_layers`) differ. This run's step and learning-rate
      schedule start at 0 either way (`train_steps` counts this run's steps).
    signature: description of the model config stored in checkpoints; a resume under another
      signature is refused.
    peak_flops: per-device peak FLOP/s for the MFU estimate (None: measured with a matmul).
    progress_bar: show a tqdm bar on process 0.
  """
  model_dir: str
  train_steps: int
  optim: optim_lib.OptimConfig = dataclasses.field(default_factory=optim_lib.OptimConfig)
  mesh: mesh_lib.MeshConfig = dataclasses.field(default_factory=mesh_lib.MeshConfig)
  checkpoint: checkpoint_lib.CheckpointConfig = dataclasses.field(
      default_factory=checkpoint_lib.CheckpointConfig)
  num_microbatches: int = 1
  seed: int = 0
  log_every: int = 10
  eval_every: int = 0
  eval_batches: int | None = None
  skip_nonfinite: bool = False
  init_patterns: tuple[str, ...] = ("backbone/.*",)
  init_optimizer_state: bool = True
  signature: str = ""
  peak_flops: float | None = None
  progress_bar: bool = True

  def __post_init__(self):
    if self.train_steps < 0:
      raise ValueError(f"TrainConfig.train_steps must be >= 0, got {self.train_steps}")
    if self.num_microbatches < 1:
      raise ValueError(f"TrainConfig.num_microbatches must be >= 1, got {self.num_microbatches}")
    if self.log_every < 1:
      raise ValueError(f"TrainConfig.log_every must be >= 1, got {self.log_every}")

  def full_signature(self) -> str:
    """Model signature plus the parts of the optimizer config that shape the saved state."""
    o = self.optim
    return (f"{self.signature} | optim={o.name} frozen={list(o.frozen)} "
            f"factored={o.factored} min_dim_to_factor={o.min_dim_size_to_factor}")
