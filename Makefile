# finser: `make train` and `make test` each set up .venv first when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel on this machine's disk; a GPU user passes e.g. TORCH="torch==2.13.0 --index-url ...".
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
# pytest workers for `make test`: the suite is mostly train.py runs (forked from a preloaded Python, tests/preloaded.py).
TEST_WORKERS ?= 2

.PHONY: install train test test-fast bench bench-scale reproduce reproduce-quick report lint clean

# make reproduce DATASET=combined ROOT=/data/ser ARCH=spectral HEAD=conv1d SPLIT=speaker SEEDS=0,1,2,3,4 (CONTROLS=1:
# also the closed-form FIN, SincNet and LEAF controls, docs/ser.md)
# make reproduce DATASET=ravdess ROOT=/data/ser SPLIT=emobox_folds FOLDS=all NFOLDS=6 FRACTIONS=0.1,0.2,0.5,1.0
# (LEAVE_ONE_OUT=1: also the fine-tuned FINs with each FIN left out in turn)
REPRODUCE_VARS = $(foreach v,DATASET ROOT ARCH HEAD SPLIT SEEDS FOLDS NFOLDS FRACTIONS FIN_ARGS SER_ARGS OUT CONTROLS LEAVE_ONE_OUT,$(if $($(v)),$(v)='$($(v))'))
RUNS ?= outputs/reproduce

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python train.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# The edit-test loop: everything but the tests marked slow (train.py, predict.py and script subprocesses, and the few
# over a few seconds; see tests/conftest.py), in one process.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

reproduce: $(STAMP)
	env $(REPRODUCE_VARS) PYTHON=$(BIN)/python bash scripts/reproduce.sh

# The same on the embedded corpus, trained until validation stops improving (the presets' early-stopping rule; 150
# epochs is only a cap): 3 FIN epochs, then the four SER variants x seeds 0-2 on 1.5 s crops from 0.6 s (the
# study's 2.5 s), batches of 8, two single-threaded jobs at a time (more steps per second on 2 cores than one
# job on both). Measured 2026-12-03: 96 min with set-up for seeds 0-2 (runs stopped at epochs 36-90), so five
# seeds (SEEDS=0,1,2,3,4, ~2.5 h) do not fit the 45-minute budget on 2 cores (README, Results).
reproduce-quick: $(STAMP)
	env DATASET=synthetic SEEDS=0,1,2 FIN_ARGS="training.max_epochs=3 logger=csv hydra/launcher=parallel" \
	  SER_ARGS="training.batch_size=8 dataset.audio.duration=1.5 logger=csv hydra/launcher=parallel" \
	  $(REPRODUCE_VARS) \
	  PYTHON=$(BIN)/python bash scripts/reproduce.sh

report: $(STAMP)
	$(BIN)/python scripts/report.py "runs=$(RUNS)"

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

# The study's scale rehearsed (long, so not in `make bench`): SCALE of the study-shaped corpus, extrapolated.
bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks.scale fraction=$(or $(SCALE),0.005) json=outputs/bench/scale.json \
	  markdown=outputs/bench/scale.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
