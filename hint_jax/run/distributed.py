"""Multi-process start-up: `jax.distributed.initialize` from flags or the environment."""
import jax


def initialize(coordinator_address: str | None, num_processes: int, process_id: int,
               auto: bool = False, heartbeat_timeout_s: int | None = None) -> None:
  """Joins a multi-process run when asked; a single-process run needs nothing.

  On CPU the cross-process collectives use gloo. Must run before any other JAX call.

  Args:
    coordinator_address: host:port of process 0.
    num_processes: processes in the run.
    process_id: this process.
    auto: let JAX detect the cluster (TPU pods, SLURM).
    heartbeat_timeout_s: a process whose peer (or coordinator) has been silent this long stops
      with an error instead of waiting forever (None: JAX's default, 100 s).
  """
  timeouts = {} if heartbeat_timeout_s is None else {
      "heartbeat_timeout_seconds": heartbeat_timeout_s}
  if auto:
    jax.distributed.initialize(**timeouts)
    return
  if num_processes <= 1 and not coordinator_address:
    return
  if not coordinator_address:
    raise ValueError(f"num_processes={num_processes} needs --coordinator_address")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects CPU devices
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id, **timeouts)
