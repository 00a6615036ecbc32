# citydesk — the two commands: `make demo` runs the live demo, `make test` runs every test.
# Both create .venv and install the pinned dependencies first (PyPI: requirements.lock; npm:
# package-lock.json, copied into the git-ignored static/vendor); `make test` also installs the
# Debian packages the tests need (PostGIS, Chromium) and starts the local services if down.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench static system-deps services clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

static:
	bash scripts/static-assets.sh

demo: $(STAMP) static
	$(BIN)/citydesk demo

system-deps:
	bash scripts/system-deps.sh

services:
	@if [ -x ../shared/services.sh ] || [ -f ../shared/services.sh ]; then bash ../shared/services.sh; fi

lint: $(STAMP)
	$(BIN)/ruff check citydesk tests bench
	$(BIN)/ruff format --check citydesk tests bench
	$(BIN)/mypy citydesk

test: $(STAMP) static system-deps services lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP) services
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) node_modules citydesk/web/static/vendor citydesk-data .pytest_cache .mypy_cache .ruff_cache
