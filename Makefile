# iTool Web — the commands. `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8000
BFCL_EVAL = bfcl-eval==2026.3.23

.PHONY: setup demo test test-fast lint bench gpu-check clean

setup: $(VENV)/.installed

# Reinstalled when a requirements file changes. torch comes pinned to its CPU build (requirements.txt).
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps $(BFCL_EVAL)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "note: no Chromium found; the browser tests (tests/e2e) will fail. Install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM=/path/to/chromium."; \
	  fi
	touch $@

demo: setup
	$(BIN)/python manage.py demo --port $(PORT)

test: setup
	ITOOL_DATA_DIR=$(CURDIR)/var/test $(BIN)/pytest

# ruff's lint and format check (pyproject.toml); `ruff format .` and `ruff check --fix .` repair most of it.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	ITOOL_DATA_DIR=$(CURDIR)/var/bench $(BIN)/python -m benchmarks

# On a CUDA machine: every GPU path once (docs/gpu.md). Without CUDA it says so and exits 0.
gpu-check: setup
	$(BIN)/python -m workers.gpu_check

clean:
	rm -rf var/test var/bench .pytest_cache
