"""Install hint_jax: `pip install -e .[test,convert]` (see Makefile)."""
import setuptools

# Lower bounds are the release series the suite is run with (constraints.txt pins the exact
# versions); the code uses APIs newer than earlier series (jax.set_mesh, Shardy constraints,
# orbax's current CheckpointManager, Grain's MapDataset). jax, flax and grain need Python 3.11.
_CORE = [
    "jax>=0.10,<0.11",
    "flax>=0.12,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12,<0.13",
    "seqio>=0.0.20",
    "tensorflow>=2.21,<2.22",
    "tensorflow-datasets>=4.9,<5",
    "gin-config>=0.5,<0.6",
    "clu>=0.0.10",
    "tensorboard>=2.16",
    "sentencepiece>=0.2,<0.3",
    "rouge-score>=0.1.2,<0.2",
    "etils[epath]>=1.5",
    "numpy>=2.0",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "safetensors>=0.4",
    # streaming training input (hint_jax/data/streaming.py, `hint-jax cache-tasks`)
    "grain>=0.2.18,<0.3",
    "array_record>=0.7",
    "msgpack>=1.0",
]

setuptools.setup(
    name="hint_jax",
    version="0.1.0",
    description="HINT (Hypernetwork INstruction Tuning) in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The SeqIO registrations (top-level `tasks/`) and the gin files (top-level `gin_configs/`)
    # install under namespaced names, so a non-editable install carries both and no other
    # `tasks` on sys.path shadows them (docs/architecture.md, "Packaging").
    packages=[*setuptools.find_packages(include=["hint_jax", "hint_jax.*"]), "hint_jax_tasks",
              "hint_jax_gin_configs"],
    package_dir={"hint_jax_tasks": "tasks", "hint_jax_gin_configs": "gin_configs"},
    package_data={"hint_jax": ["assets/*", "data/t0_edited_prompts.*"],
                  "hint_jax_tasks": ["README.md"],
                  "hint_jax_gin_configs": ["*/*.gin"]},
    python_requires=">=3.11",
    install_requires=_CORE,
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3", "chex>=0.1.86", "nbclient>=0.9",
                 "nbformat>=5.9", "ipykernel>=6", "ruff>=0.4"],
        # torch is never a core requirement: an unpinned torch pulls a multi-GB CUDA build.
        "convert": ["transformers>=5.0", "torch>=2.2", "peft>=0.10"],
        "tpu": ["jax[tpu]"],
        "gpu": ["jax[cuda12]"],
    },
    entry_points={"console_scripts": ["hint-jax=hint_jax.run.main:main"]},
)
