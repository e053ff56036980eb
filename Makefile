# Squall developer tasks; `make help` lists them.
# Override any variable below on the command line, e.g.
#   make test PYTEST_ARGS='-x -k websocket'    make bench BENCH_ARGS='--servers squall,uvicorn'

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON        ?= python3
VENV          ?= .venv
HOST          ?= 127.0.0.1
PORT          ?= 8000
PYTEST_ARGS   ?=
BENCH_ARGS    ?=
TEST_PYTHONS  ?= 3.10 3.11 3.12 3.13
FUZZ_SECONDS  ?= 60
# Tests mostly wait on sockets and subprocesses: two pytest workers halve the wall time.
PYTEST_JOBS   ?= -n 2
# Where the compiled hot path is used (HTTP/1.1 and HTTP/2 heads, plain WebSocket frames, the
# request path's classes compiled by Cython, proxy headers): run again without it.
PURE_PATH_SUITES ?= tests/protocols/http tests/protocols/http2 tests/protocols/test_read_syscalls.py tests/middleware tests/test_compiled_classes.py tests/protocols/websockets/test_ws_handshake.py tests/protocols/websockets/test_ws_connection_header.py tests/protocols/websockets/test_ws_messages.py
FUZZ_TARGETS  ?= http1 websocket http2

PY  := $(VENV)/bin/python
PIP := $(PY) -m pip --quiet --disable-pip-version-check

# command:debian-package pairs; a package is installed only if its command is missing.
TEST_TOOLS  := wrk:wrk h2load:nghttp2-client nginx:nginx chromium:chromium valgrind:valgrind strace:strace
BENCH_TOOLS := h2load:nghttp2-client
INSTRUCTION_TOOLS := h2load:nghttp2-client valgrind:valgrind

# Installs the Debian packages of missing commands, with one `apt-get update`,
# when we are root and have apt-get. Otherwise, or if apt fails, it only warns:
# the tests that need a missing tool skip and say why.
define ensure_tools
missing=""; \
for pair in $(1); do \
  cmd="$${pair%%:*}"; \
  command -v "$$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$$cmd" ] || missing="$$missing $${pair#*:}"; \
done; \
if [ -z "$$missing" ]; then \
  :; \
elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
  echo "warning: not installing$$missing (needs root and apt-get); tests that need them will skip" >&2; \
else \
  echo "installing$$missing with apt-get"; \
  export DEBIAN_FRONTEND=noninteractive; \
  apt-get -o DPkg::Lock::Timeout=300 update -qq \
    && apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $$missing >/dev/null \
    || echo "warning: apt-get could not install$$missing; tests that need them will skip" >&2; \
fi
endef

.PHONY: help run test test-autobahn test-tools test-all bench bench-quick bench-instructions fuzz clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

# Created once; the targets below re-run `pip install`, which refreshes it.
$(PY):
	$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
	$(PIP) install --upgrade pip

run: $(PY) ## Install Squall into .venv and serve examples/app.py (HOST, PORT: 127.0.0.1:8000)
	$(PIP) install -e '.[standard]'
	$(VENV)/bin/squall app:app --app-dir examples --host $(HOST) --port $(PORT)

# Autobahn's permessage-deflate cases with 32-128 KiB messages (1000 of each,
# compressed by a Python 2 client) take most of the suite's time on two cores
# (8.5 of the Autobahn test's minutes with them, 3.2 without): `make test`
# leaves these 108 cases to `make test-autobahn` and runs the other 409, with
# every variant of 12.* and 13.* with its smaller messages.
AUTOBAHN_SLOW_CASES ?= 12.*.8,12.*.9,12.*.10,12.*.13,12.*.14,12.*.15,12.*.16,12.*.17,12.*.18,13.*.8,13.*.9,13.*.10,13.*.13,13.*.14,13.*.15,13.*.16,13.*.17,13.*.18

test: $(PY) ## Install .[test] into .venv and the test tools, then run pytest (PYTEST_ARGS)
	$(PIP) install -e '.[test]'
	@$(MAKE) --no-print-directory test-tools
	SQUALL_AUTOBAHN_EXCLUDE='$(AUTOBAHN_SLOW_CASES)' $(PY) -m pytest $(PYTEST_JOBS) $(PYTEST_ARGS)
	@echo "=== the suites the compiled hot path serves, again on the pure-Python path (SQUALL_NO_EXTENSIONS=1)"
	SQUALL_NO_EXTENSIONS=1 $(PY) -m pytest $(PYTEST_JOBS) -q $(PURE_PATH_SUITES)

test-autobahn: $(PY) ## Every Autobahn case (1-10, 12, 13) against every --ws implementation, compiled and pure paths (~26 min)
	$(PIP) install -e '.[test]'
	@$(MAKE) --no-print-directory test-tools
	$(PY) -m pytest tests/protocols/websockets/test_autobahn.py $(PYTEST_ARGS)
	@echo "=== again on the pure-Python path (SQUALL_NO_EXTENSIONS=1)"
	SQUALL_NO_EXTENSIONS=1 $(PY) -m pytest tests/protocols/websockets/test_autobahn.py $(PYTEST_ARGS)

test-tools: ## Install wrk, h2load, nginx, chromium, valgrind, strace (apt, root only) and Autobahn, if missing
	@$(call ensure_tools,$(TEST_TOOLS))
	@if [ -x tests/autobahn/install.sh ]; then \
	  tests/autobahn/install.sh || echo "warning: tests/autobahn/install.sh failed; the Autobahn tests will skip" >&2; \
	fi

# Each version's newest pyenv patch release gets its own venv, remade when that
# release changes; a failure on one version does not stop the others.
test-all: ## Run the suite on each pyenv Python 3.10-3.13 (TEST_PYTHONS), in .venv-3.X
	@$(MAKE) --no-print-directory test-tools
	@root="$$(pyenv root 2>/dev/null)"; ran=""; failed=""; \
	for v in $(TEST_PYTHONS); do \
	  home="$$(ls -d "$$root/versions/$$v".* 2>/dev/null | grep -E '/[0-9.]+$$' | sort -V | tail -n 1)"; \
	  if [ -z "$$root" ] || [ -z "$$home" ] || [ ! -x "$$home/bin/python3" ]; then \
	    echo "test-all: skipping Python $$v (not installed with pyenv)"; continue; \
	  fi; \
	  echo "=== Python $$v: $$home/bin/python3"; \
	  venv=".venv-$$v"; ran="$$ran $$v"; \
	  { grep -qsx "home = $$home/bin" "$$venv/pyvenv.cfg" || "$$home/bin/python3" -m venv --clear "$$venv"; } \
	    && "$$venv/bin/python" -m pip --quiet --disable-pip-version-check install -e '.[test]' \
	    && SQUALL_AUTOBAHN_EXCLUDE='$(AUTOBAHN_SLOW_CASES)' "$$venv/bin/python" -m pytest $(PYTEST_ARGS) \
	    || failed="$$failed $$v"; \
	done; \
	if [ -z "$$ran" ]; then echo "test-all: none of $(TEST_PYTHONS) found" >&2; exit 1; fi; \
	if [ -n "$$failed" ]; then echo "test-all: ran on$$ran, FAILED on$$failed" >&2; exit 1; fi; \
	echo "test-all: passed on$$ran"

# Both rewrite docs/benchmarks.md, .png and .json; see that page.
bench: $(PY) ## Benchmark Squall against its peers, 3 rounds (~15 min); rewrites docs/benchmarks.md (BENCH_ARGS)
	@$(call ensure_tools,$(BENCH_TOOLS))
	$(PIP) install -e '.[bench]'
	$(PY) bench/run.py $(BENCH_ARGS)

bench-quick: $(PY) ## The same benchmark, one round of each scenario (BENCH_ARGS)
	@$(call ensure_tools,$(BENCH_TOOLS))
	$(PIP) install -e '.[bench]'
	$(PY) bench/run.py --rounds 1 $(BENCH_ARGS)

bench-instructions: $(PY) ## Instructions per request under valgrind, the deterministic figure (~10 min; BENCH_ARGS)
	@$(call ensure_tools,$(INSTRUCTION_TOOLS))
	$(PIP) install -e '.[bench]'
	$(PY) bench/instructions.py $(BENCH_ARGS)

# Each harness of tests/fuzz runs for FUZZ_SECONDS under atheris, from its
# seed corpus; what it learns goes to .fuzz/ (not committed), what breaks
# an invariant to tests/fuzz/crashes/<target>/, which `make test` replays.
fuzz: $(PY) ## Fuzz each target of tests/fuzz with atheris for FUZZ_SECONDS (60) each (FUZZ_TARGETS)
	$(PIP) install -e '.[fuzz]'
	@failed=""; \
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p .fuzz/$$target tests/fuzz/crashes/$$target; \
	  echo "=== $$target: $(FUZZ_SECONDS) s"; \
	  (cd tests/fuzz && $(abspath $(PY)) run_fuzzer.py $$target $(CURDIR)/.fuzz/$$target corpus/$$target \
	    -dict=$$target.dict -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=crashes/$$target/) || failed="$$failed $$target"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in$$failed (see tests/fuzz/crashes/)" >&2; exit 1; fi

clean: ## Remove build output, caches and test reports (not the venvs: rm -rf .venv* for those)
	rm -rf build dist src/*.egg-info .pytest_cache .autobahn reports .fuzz
	rm -f src/squall/*.so
	find . \( -path './.venv*' -o -path ./.git \) -prune -o -type d -name __pycache__ -exec rm -rf {} +
