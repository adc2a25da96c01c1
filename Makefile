# The commands a user needs; each creates or reuses the local virtual environment .venv.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_HOME ?= $(CURDIR)/var/prefect

.PHONY: venv demo test faults realdata bench-ingest bench-train bench-skill check-gpu-torch clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/pip || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel lies on disk; anything else pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m flows.demo

test: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	@command -v chromium >/dev/null || echo "note: the browser test needs Chromium: apt-get install chromium"
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The real NOAA files the tests read, for a clone without ../shared (needs internet; ENSO_REALDATA_CACHE, default .realdata/)
realdata: $(STAMP)
	$(BIN)/python -m tests.realdata

# The fault suite alone (hostile inputs, flaky network, duplicate email); `make test` runs it too.
faults: $(STAMP)
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m faults $(PYTEST_ARGS)

bench-ingest: $(STAMP)
	$(BIN)/python -m benchmarks.bench_ingest

bench-train: $(STAMP)
	$(BIN)/python -m benchmarks.bench_train

bench-skill: $(STAMP)
	$(BIN)/python -m benchmarks.bench_skill

# downloads (never installs) the CUDA torch wheel the GPU image pins and says what a GPU host needs
check-gpu-torch: $(STAMP)
	$(BIN)/python docker/check_gpu_torch.py

clean:
	rm -rf var/ .pytest_cache
