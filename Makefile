# Every command sets up .venv first when it is missing or out of date; only python3 is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000

.PHONY: install run test test-multitenant lint format browser screenshots bench profile fuzz clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Serve the API on http://127.0.0.1:$(PORT) on the embedded store, with demo data; campaigns are
## delivered to the local Bot API sandbox unless TELEGRAM_API_BASE names another Bot API server.
run: $(STAMP)
	APP_ENV=$${APP_ENV:-development} SEED_DEMO=$${SEED_DEMO:-true} HOST=127.0.0.1 PORT=$(PORT) \
		TELEGRAM_API_BASE=$${TELEGRAM_API_BASE:-http://127.0.0.1:$(PORT)/sandbox/bot-api} \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## Lint, then run the whole suite (the browser tests too, where Chromium is or can be installed).
test: $(STAMP) lint typecheck browser
	$(BIN)/pytest -n auto

## Only the tenancy isolation tests.
test-multitenant: $(STAMP)
	$(BIN)/pytest -m multitenant

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
screenshots: $(STAMP) browser
	SCREENSHOTS=1 $(BIN)/pytest -q tests/test_dashboard_browser.py

## Throughput against a bare Flask app (wrk, installed with apt-get where possible), database
## operations per route, cost as the data grows, a one-minute soak, and campaign delivery.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/roundtrips.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/delivery.py

## Where a route's CPU goes under load (py-spy on the gunicorn worker): make profile ROUTE=/api/v1/...
ROUTE ?= /api/v1/tenants/current
profile: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/profile.py --path '$(ROUTE)'

## Schemathesis against the service under gunicorn, longer than the in-process run of make test.
fuzz: $(STAMP)
	$(BIN)/python bench/fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
