# Billing Integration Hub — task runner. `make help` lists the tasks.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help setup run test lint typecheck pytest openapi bench bench-policy bench-inproc bench-hop bench-trace bench-trace-instr bench-x12 bench-stall clean

help: ## list the tasks
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml scripts/constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c scripts/constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv (if missing) and install the hub with its dev tools

run: setup ## run the hub, the three stub servers and the embedded store; prints URLs and a demo key
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/run.sh

test: setup lint typecheck pytest ## the whole suite: ruff, mypy, pytest (with a real Redis)

lint: setup ## ruff
	$(VENV)/bin/ruff check gateway connectors canonical policies tests bench scripts

typecheck: setup ## mypy --strict on the packages
	$(VENV)/bin/mypy

pytest: setup ## pytest only (starts a redis-server on a free port when none answers)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" scripts/with-redis.sh $(PY) -m pytest -q

openapi: setup ## regenerate openapi/v1.json from the app
	$(VENV)/bin/billing-hub openapi --out openapi/v1.json

bench: setup ## load benchmark: bare ping vs GET transaction vs POST journal; policy chain on Redis; tracing off/10%/100%
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/api_bench.py

bench-policy: setup ## the policy chain's goals judged on the median of 3 runs (noisy machines)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) bench/policy_repeat.py

bench-inproc: setup ## the hub app's own CPU per request (GET, POST), in-process, policy chain on Redis
	$(PY) bench/inproc_bench.py

bench-hop: setup ## CPU cost of one connector hop: httpx transport vs httpx-aiohttp vs raw aiohttp
	$(PY) bench/hop_bench.py

bench-trace: setup ## tracing's own cost per request in the server middleware: off / 10% / 100%
	$(PY) bench/trace_overhead.py

bench-trace-instr: setup ## tracing's cost in instructions per request (valgrind): off / 0% / 10% / 100%, noise-free
	$(PY) bench/trace_instructions.py

bench-x12: setup ## X12 835 parse throughput and memory, with pyx12 for the ratio
	$(PY) bench/make_835.py && $(PY) bench/x12_bench.py

bench-stall: setup ## how long an 8 MB raw 835 holds the hub's event loop (in-process, embedded store)
	@test -f bench/data/835_8mb.x12 || $(PY) bench/make_835.py
	$(PY) bench/loop_stall.py

clean: ## remove the venv, caches and local data
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache bench/data
