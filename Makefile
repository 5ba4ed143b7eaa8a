# algocomp developer commands. `make` (or `make help`) lists them.
# Needs only python3 (with venv), make and a C compiler; everything else goes into .venv.

PY ?= python3
VENV = .venv
BIN = $(VENV)/bin
# What the targets below need: the service stack and the API client (dev, demo, test), the native stack's S3 server
# (devstack), pytest and the linters. `pip install algocomp` alone is the engine and the local CLI.
EXTRAS = server,client,devstack,test,lint
# Pinned versions of every dependency (`make constraints` regenerates it), so every install gets the same ones.
CONSTRAINTS = constraints.txt
# Stamp of the last install: redone whenever the dependencies (pyproject.toml) or their pins change.
INSTALLED = $(VENV)/.installed
# The web dashboard's bundle (generated, git-ignored), rebuilt when a source of dashboard/ or its lock file changes.
DASHBOARD = services/api/algocomp_api/dashboard/static/index.html
DASHBOARD_SOURCES = $(wildcard dashboard/src/*.ts dashboard/src/*.tsx dashboard/src/*.css dashboard/src/*/*.tsx) \
	dashboard/index.html dashboard/package.json dashboard/package-lock.json dashboard/vite.config.ts dashboard/tsconfig.json

.DEFAULT_GOAL := help

.PHONY: help install test test-slow bench demo dev stop up down bench-stack bench-figure1 bench-scaling bench-scaling-compose bench-load bench-faults clean distclean
.PHONY: test-compose constraints lint dashboard bench-dashboard

help: ## list the targets
	@echo "algocomp: make TARGET"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $@

install: $(INSTALLED) $(DASHBOARD) ## create .venv and install algocomp (editable) with what these targets need, pinned by constraints.txt; build the dashboard

# npm ci (exactly package-lock.json's versions), tsc, vite build; installs Debian's nodejs and npm as root when missing
$(DASHBOARD): $(DASHBOARD_SOURCES)
	$(PY) tools/dashboard_build.py build

dashboard: ## build the web dashboard (dashboard/ into the API's static files, served at /; needs Node.js 18+ and npm)
	$(PY) tools/dashboard_build.py build

constraints: ## re-resolve pyproject.toml's dependencies and extras and pin them in constraints.txt (then `make install`)
	$(PY) scripts/lock_constraints.py

lint: $(INSTALLED) ## ruff (lint, format check) on everything; mypy on the library and the services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(INSTALLED) $(DASHBOARD) lint ## lint, then the test suite (the slow reproduction tests excluded); starts Postgres and Redis if needed
	$(BIN)/python tools/devstack.py servers
	$(BIN)/pytest -q

test-slow: $(INSTALLED) ## run the tests that hold the README's reproduction table (the slow ones included; most of an hour)
	$(BIN)/pytest -q -s -m "slow or reproduction"

bench: $(INSTALLED) ## time the simulation engine (benchmarks/bench_engine.py)
	$(BIN)/python benchmarks/bench_engine.py

dev: $(INSTALLED) $(DASHBOARD) ## start the native stack (api, worker, aggregator, beat, Flower, MLflow, S3) and print its URLs
	$(BIN)/python tools/devstack.py up

stop: ## stop the native stack started by `make dev`
	$(BIN)/python tools/devstack.py down

demo: $(INSTALLED) $(DASHBOARD) ## through the API: the Calvano baseline and myopic-vs-bandit, 3 seeds each, live, then a table; ends with a sweep (opponents x price cap)
	$(BIN)/python tools/devstack.py up
	$(BIN)/python scripts/demo.py

up: .env $(DASHBOARD) ## start the whole stack in Docker (docker compose up -d --build); creates .env with random secrets first
	docker compose up -d --build

# The Docker stack's secrets: made once from .env.example with fresh random values, never overwritten, never
# committed (.gitignore). Delete it (and the volumes: docker compose down -v) to start over with new ones.
.env:
	$(PY) scripts/make_env.py

down: .env ## stop the Docker stack (data stays in its volumes)
	docker compose down

test-compose: $(INSTALLED) $(DASHBOARD) ## docker-compose.yml end to end in Docker (root installs Docker; stand-in images when none can be pulled)
	$(BIN)/python tests/compose/compose_e2e.py

bench-stack: $(INSTALLED) ## time the stack: run throughput, API vs CLI wall time, SSE fan-out (benchmarks/bench_stack.py)
	$(BIN)/python tools/devstack.py up
	$(BIN)/python benchmarks/bench_stack.py $(BENCH_ARGS)

bench-figure1: $(INSTALLED) ## Calvano et al.'s Figure 1 sweep (10 x 10 cells x 100 sessions) through the stack, timed; its heatmap in out/bench/
	$(BIN)/python tools/devstack.py up
	$(BIN)/python benchmarks/bench_stack.py --only figure1 $(BENCH_ARGS)

bench-scaling: $(INSTALLED) ## a sweep's wall time with 1, 2 and 4 run-worker processes (benchmarks/bench_scaling.py; restarts `make dev`)
	$(BIN)/python benchmarks/bench_scaling.py $(BENCH_ARGS)

bench-scaling-compose: $(INSTALLED) $(DASHBOARD) ## the same on the Docker stack with 1, 2 and 4 worker containers (docker compose --scale)
	$(BIN)/python benchmarks/bench_scaling.py --compose $(BENCH_ARGS)

bench-load: $(INSTALLED) ## load on the API (benchmarks/bench_load.py), then the fault scenarios (bench-faults)
	$(BIN)/python tools/devstack.py up
	$(BIN)/python benchmarks/bench_load.py $(BENCH_ARGS); load=$$?; $(MAKE) bench-faults && exit $$load

bench-dashboard: $(INSTALLED) $(DASHBOARD) ## time the dashboard's runs page with 1,000 runs in the database (benchmarks/bench_dashboard.py)
	$(BIN)/python tools/devstack.py up
	$(BIN)/python tools/dashboard_build.py chromium
	$(BIN)/python benchmarks/bench_dashboard.py $(BENCH_ARGS)

# Its own stack (database, Redis, S3, API, worker, aggregator, beat on free ports), never `make dev`'s: it kills
# and stops those processes. FAULT_ARGS e.g. --scenarios worker-kill,api-kill
bench-faults: $(INSTALLED) ## kills and outages during 30-run sweeps, checked run by run (benchmarks/bench_faults.py; ~17 min)
	$(BIN)/python benchmarks/bench_faults.py $(FAULT_ARGS)

clean: ## remove outputs and caches (keeps .venv)
	rm -rf out/ build/ dist/ .pytest_cache/ .numba_cache/ dashboard/node_modules/ services/api/algocomp_api/dashboard/static/
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and the packaging metadata
	rm -rf $(VENV)
	find . -path ./$(VENV) -prune -o -type d -name '*.egg-info' -prune -exec rm -rf {} +
