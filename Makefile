# WaveGuard — one-machine workflow. Every target installs what it needs first.
#   make run    the whole local stack (Azurite, Graph emulator, mini-host) and a live demo; Ctrl-C stops it
#   make test   the whole test suite (the fixtures start Azurite, the emulator and the mini-host; chromium
#               is installed for the browser tests where this runs as root with apt-get)
#   make lint   ruff (lint and format check) and mypy (shared, cli, handlers, local)
#   make bench  the benchmarks under bench/
#   make chaos  the fault campaign: the same HR workload clean and under faults, end states compared
#   make infra-check  the Bicep compiled and linted (where a Bicep CLI is installed) and checked against the code

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := .venv
VPY      := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
NODE_DIR := local/node
AZURITE  := $(NODE_DIR)/node_modules/.bin/azurite
DEMO     ?= 1
UV_SPEC  := uv>=0.13,<0.14

# A Python 3.13 interpreter: $(PYTHON) if given, else a working python3.13 on PATH (pyenv shims on PATH
# may name one that is not selected, hence the --version probe), else pyenv's newest 3.13.x.
PYTHON ?= $(shell { p=$$(command -v python3.13 2>/dev/null) && "$$p" --version >/dev/null 2>&1 && echo "$$p"; } || \
	{ command -v pyenv >/dev/null 2>&1 && for v in $$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.|$$)' | sort -rV); do \
	    p="$$(pyenv prefix $$v 2>/dev/null)/bin/python3.13"; [ -x "$$p" ] && echo "$$p" && break; done; })

.PHONY: help install browser run test test-unit lint bench chaos infra-check clean

help:
	@echo "make run    start the local stack with a demo (DEMO=0 for none; HOST_PORT=, GRAPH_PORT=, SINK_PORT=,"
	@echo "            BLOB_PORT=, QUEUE_PORT=, TABLE_PORT= to move it); Ctrl-C stops it"
	@echo "make test   run the whole test suite"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make bench  run the benchmarks"
	@echo "make chaos  run the fault campaign (about 15 minutes)"
	@echo "make infra-check  compile and lint infra/ with the Bicep CLI where installed; check it against the code"

$(VPY):
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: WaveGuard needs Python 3.13 (Azure Functions' newest runtime) and none was found." >&2; \
	  echo "       Install it (e.g. 'pyenv install 3.13' or your OS package python3.13), or run 'make PYTHON=/path/to/python3.13 ...'." >&2; \
	  exit 1; fi
	@"$(PYTHON)" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' || \
	  { echo "error: $(PYTHON) is not Python 3.13" >&2; exit 1; }
	"$(PYTHON)" -m venv $(VENV)

# uv installs the requirements in seconds where pip takes a minute (msgraph-sdk is ~30,000 files);
# the same pinned files either way, and pip takes over if uv cannot be installed or fails.
$(STAMP): $(VPY) requirements.txt requirements-dev.txt pyproject.toml
	@if $(VPY) -m pip install --quiet --disable-pip-version-check "$(UV_SPEC)" 2>/dev/null && \
	   $(VENV)/bin/uv pip install --quiet --python $(VPY) -r requirements-dev.txt && \
	   $(VENV)/bin/uv pip install --quiet --python $(VPY) --no-deps -e . ; then \
	  echo "Python requirements installed into $(VENV) (uv)"; \
	else \
	  echo "uv unavailable or failed; installing with pip (about a minute)"; \
	  $(VPY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt && \
	  $(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -e . ; \
	fi
	@touch $(STAMP)

$(AZURITE): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js 18+) is needed to install Azurite" >&2; exit 1; }
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(AZURITE)

# The Python requirements and Azurite (npm, ~30 s) install side by side.
install:
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(AZURITE)

# make run HOST_PORT=8071 GRAPH_PORT=8072 ...: the stack on other ports (SINK_PORT, BLOB_PORT,
# QUEUE_PORT, TABLE_PORT too); the banner then names a settings file for the CLI with those ports.
STACK_PORTS = $(foreach s,host graph sink blob queue table,$(if $($(shell echo $(s) | tr a-z A-Z)_PORT),--$(s)-port $($(shell echo $(s) | tr a-z A-Z)_PORT)))

run: install
	$(VPY) -m local.stack run $(if $(filter 0,$(DEMO)),--no-demo,) $(STACK_PORTS)

# The browser tier (tests marked browser) drives Debian's chromium through Playwright; Playwright's own
# browser download is never used. Installed here as root with apt-get, only when the tests selected can
# include it (PYTEST_ARGS empty, or naming tests/, tests/functional/, tests/functional/report,
# -m browser or -k report; never with -m "not browser"). A failing apt-get gives up within seconds (no
# retries, 10 s network timeouts) and a hung one is cut off (45 s update, 3 min install); then, or
# without root and apt-get, those tests skip and say why.
APT_FAST := -o Acquire::Retries=0 -o Acquire::http::Timeout=10 -o Acquire::https::Timeout=10
# Non-empty when the tests PYTEST_ARGS selects can include the browser tier.
BROWSER_TESTS = $(if $(findstring not browser,$(PYTEST_ARGS)),,$(if $(strip $(PYTEST_ARGS)),$(strip \
  $(filter tests tests/ tests/functional tests/functional/ . ./ report,$(PYTEST_ARGS)) \
  $(findstring browser,$(PYTEST_ARGS))$(findstring tests/functional/report,$(PYTEST_ARGS))),all))
browser:
	@if [ -z "$(BROWSER_TESTS)" ]; then :; \
	elif command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium for the browser tests (apt-get, about a minute)"; \
	  { timeout 45 apt-get $(APT_FAST) update -qq && \
	    DEBIAN_FRONTEND=noninteractive timeout 180 apt-get $(APT_FAST) install -y -qq chromium >/dev/null; } || \
	    echo "browser: apt-get install chromium failed or timed out; the browser tests will be skipped"; \
	else \
	  echo "browser: chromium is not installed and this is not root with apt-get: the browser tests will be" \
	    "skipped (apt-get install chromium)"; \
	fi

test: install browser
	$(VPY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(VPY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(VPY) -m bench

# CHAOS_ARGS, e.g. "--events 100 --lease 20" for a quick look (a lease below the claim expiry is
# less realistic than Azure's 10 minutes: killed work then waits for its claim).
chaos: install
	$(VPY) -m bench.fault_campaign $(CHAOS_ARGS)

# The Bicep CLI (bicep, or az bicep) is a downloaded binary, so it is not installed here: without one
# the compile and lint are skipped, said so, and only the template-versus-code test runs.
BICEP_FILES := infra/main.bicep $(wildcard infra/modules/*.bicep)

infra-check: install
	@if command -v bicep >/dev/null 2>&1; then \
	  for f in $(BICEP_FILES); do echo "bicep build $$f"; bicep build "$$f" --stdout >/dev/null || exit 1; \
	    bicep lint "$$f" || exit 1; done; \
	elif command -v az >/dev/null 2>&1 && az bicep version >/dev/null 2>&1; then \
	  for f in $(BICEP_FILES); do echo "az bicep build $$f"; az bicep build --file "$$f" --stdout >/dev/null || exit 1; \
	    az bicep lint --file "$$f" || exit 1; done; \
	else \
	  echo "infra-check: SKIPPED the Bicep compile and lint: no Bicep CLI here (install one: az bicep install," ; \
	  echo "             or the bicep binary). Only the template-versus-code test runs."; \
	fi
	$(VPY) -m pytest tests/unit/test_infra_matches_code.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .stack .pytest_cache .mypy_cache .ruff_cache
