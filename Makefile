# The two commands a new user needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
NATIVE_SOURCES := $(wildcard ext/*.pyx ext/*.pxd ext/*.pxi) CMakeLists.txt pyproject.toml

.PHONY: run test install system-deps test-deps lint typecheck unit bench bench-ci clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Editable install: Python sources are read from src/, the Cython modules are rebuilt
# whenever an ext/ source changes (a failed native build stops here, loudly).
$(VENV)/.installed: $(PY) $(NATIVE_SOURCES)
	$(PIP) install --quiet "scikit-build-core>=0.10" "cython>=3.0.10"
	$(PIP) install --quiet --no-build-isolation -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/owncast-fast serve

system-deps:
	bash scripts/install-system-deps.sh

# Browser-side test tools: Debian's Chromium, hls.js from npm (web/), Playwright's Python driver.
test-deps: install
	bash scripts/install-test-deps.sh

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest

test: system-deps install test-deps lint typecheck unit

# Full benchmark run: JSON + markdown table under .bench/, compared with the saved baseline.
bench: system-deps install test-deps
	$(PY) bench/run.py

# The quick subset CI runs: ratio bars measured side by side in one run.
bench-ci: install
	$(PY) bench/run.py --quick

clean:
	rm -rf build $(VENV) .bench
