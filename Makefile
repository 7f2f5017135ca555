# Every command sets up .venv first when it is missing or out of date; python3 (with its venv module)
# and make are all it needs.
# .venv is installed from the hash-pinned locks: `make run` takes what serving needs (the runtime and
# the embedded store), the other targets everything (the test, lint and lock tools too).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
SERVE := $(VENV)/.installed-serve
DEV := $(VENV)/.installed-dev
PORT ?= 5000
# Options for `make lock`: LOCK_OPTIONS=--upgrade moves every pin to its newest release,
# LOCK_OPTIONS='--upgrade-package NAME' only NAME's.
LOCK_OPTIONS ?=
COMPILE := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \
	--custom-compile-command 'make lock' $(LOCK_OPTIONS)

.PHONY: install run test test-multitenant query-shapes lint typecheck format lock browser screenshots bench profile fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A lock installs exactly what it pins (--no-deps), then the project itself (its `tgm` command).
$(SERVE): requirements-embedded.lock pyproject.toml | $(BIN)/python
	$(PIP) install --quiet --require-hashes --no-deps -r requirements-embedded.lock
	$(PIP) install --quiet --no-deps --editable .
	touch $@

$(DEV): requirements-dev.lock pyproject.toml | $(BIN)/python
	$(PIP) install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(PIP) install --quiet --no-deps --editable .
	touch $@

install: $(SERVE)

## Regenerate the locks from requirements.txt, requirements-embedded.txt and requirements-dev.txt,
## keeping every pin that still fits; each lock holds the one before it, at the same versions.
lock: $(BIN)/uv
	$(COMPILE) --output-file requirements.lock requirements.txt
	$(COMPILE) --output-file requirements-embedded.lock --constraint requirements.lock \
		requirements.txt requirements-embedded.txt
	$(COMPILE) --output-file requirements-dev.lock --constraint requirements-embedded.lock \
		requirements.txt requirements-embedded.txt requirements-dev.txt

# uv at the version requirements-dev.txt pins, without the locks (which may be the thing to repair).
$(BIN)/uv: requirements-dev.txt | $(BIN)/python
	$(PIP) install --quiet "$$(grep '^uv==' requirements-dev.txt)"
	touch $@

## Serve the API on http://127.0.0.1:$(PORT) on the embedded store, with demo data; campaigns are
## delivered to the local Bot API sandbox unless TELEGRAM_API_BASE names another Bot API server.
run: $(SERVE)
	APP_ENV=$${APP_ENV:-development} SEED_DEMO=$${SEED_DEMO:-true} HOST=127.0.0.1 PORT=$(PORT) \
		TELEGRAM_API_BASE=$${TELEGRAM_API_BASE:-http://127.0.0.1:$(PORT)/sandbox/bot-api} \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## Lint, then run the whole suite (the browser tests too, where Chromium is or can be installed).
test: $(DEV) lint typecheck browser
	$(BIN)/pytest -n auto

## Only the tenancy isolation tests.
test-multitenant: $(DEV)
	$(BIN)/pytest -m multitenant

## Run the whole suite and write docs/query-shapes.md from the query shapes it recorded.
query-shapes: $(DEV) browser
	QUERY_SHAPES=write $(BIN)/pytest -n auto -q

## Chromium for the browser tests: installed with apt-get when missing and we are root (CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Chromium for the browser tests (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "No Chromium, and no root with apt-get to install it: the browser tests will be skipped."; \
		fi; }

## Screenshots of the dashboard pages, taken by the browser tests, into docs/screenshots/.
screenshots: $(DEV) browser
	SCREENSHOTS=1 $(BIN)/pytest -q -m browser

## Throughput against a bare Flask app (wrk, installed with apt-get where possible), database
## operations per route, the caches of a request, cost as the data grows, a one-minute soak, and
## campaign delivery, delivery reports.
bench: $(DEV)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/roundtrips.py
	$(BIN)/python bench/auth_cache.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/reports.py

## Where a route's CPU goes under load (py-spy on the gunicorn worker): make profile ROUTE=/api/v1/...
ROUTE ?= /api/v1/tenants/current
profile: $(DEV)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/profile.py --path '$(ROUTE)'

## Schemathesis against the service under gunicorn, longer than the in-process run of make test.
fuzz: $(DEV)
	$(BIN)/python bench/fuzz.py

## ruff, and the import contracts of pyproject.toml (docs/architecture.md).
lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: $(DEV)
	$(BIN)/mypy

format: $(DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
