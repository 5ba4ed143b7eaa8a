# algocomp developer commands. `make` (or `make help`) lists them.
# Needs only python3 (with venv), make and a C compiler; everything else goes into .venv.

PY ?= python3
VENV = .venv
BIN = $(VENV)/bin
# Stamp of the last install: redone whenever pyproject.toml (the dependencies) changes.
INSTALLED = $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help install test test-slow bench demo clean distclean

help: ## list the targets
	@echo "algocomp: make TARGET"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(INSTALLED) ## create .venv and install algocomp (editable) with its test tools

test: $(INSTALLED) ## run the test suite (the slow reproduction tests excluded)
	$(BIN)/pytest -q

test-slow: $(INSTALLED) ## run only the slow reproduction tests
	$(BIN)/pytest -q -m slow

bench: $(INSTALLED) ## time the simulation engine (benchmarks/bench_engine.py)
	$(BIN)/python benchmarks/bench_engine.py

demo: $(INSTALLED) ## simulate the Calvano baseline and a myopic-vs-bandit market into out/
	rm -rf out/demo out/demo-bandit
	$(BIN)/algocomp simulate calvano-2020-baseline --sessions 100 --workers 2 --out out/demo
	$(BIN)/algocomp simulate myopic-vs-bandit --sessions 20 --out out/demo-bandit
	@echo
	@echo "Results: out/demo (Calvano et al. 2020 baseline, 100 sessions) and out/demo-bandit (myopic vs bandit)."
	@echo "Each folder holds summary.json, panel.parquet, impulse.parquet, scenario.json, config.json and plots/."

clean: ## remove outputs and caches (keeps .venv)
	rm -rf out/ build/ dist/ .pytest_cache/ .numba_cache/
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and the packaging metadata
	rm -rf $(VENV)
	find . -path ./$(VENV) -prune -o -type d -name '*.egg-info' -prune -exec rm -rf {} +
