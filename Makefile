# Two entry points: `make demo` (the main job) and `make test` (the test suite).
# Each creates its own virtual environment, installs torch==2.13.0 first (a CPU
# build), then siftdata, and installs Fashion-MNIST and WordNet from Debian when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.siftdata-installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
WORDNET := /usr/share/wordnet/data.noun

.PHONY: demo test test-distributed test-integration lint bench data venv clean

demo: $(STAMP) data
	$(VENV)/bin/siftdata demo

test: $(STAMP) data
	$(PY) -m pytest -q

# Real multi-process runs (gloo on loopback): global selection across ranks, torchrun.
test-distributed: $(STAMP) data
	$(PY) -m pytest -q -m distributed

# The integrations with the engines and trainers users run: Ray Data on a small local Ray, the
# Hugging Face Trainer and Lightning (their extras installed beside the CPU torch, never before it).
test-integration: $(STAMP) data
	$(PY) -m pip install -q -e '.[ray,hf,lightning]'
	RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m integration

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	$(VENV)/bin/lint-imports

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[report,dev,parquet]'
	touch $(STAMP)

data:
	@if [ -z "$$SIFTDATA_FMNIST_DIR" ] && [ ! -f $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST is missing. Install it with:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"; \
	    exit 1; \
	  fi; \
	fi
	@if [ -z "$$SIFTDATA_WORDNET_DIR" ] && [ ! -f $(WORDNET) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq wordnet-base; \
	  else \
	    echo "WordNet is missing. Install it with:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y wordnet-base"; \
	    exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) runs .pytest_cache
