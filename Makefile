# Every command sets up .venv first when it is missing or out of date; only python3 is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000

.PHONY: install run test test-multitenant lint format clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Serve the API on http://127.0.0.1:$(PORT) on the embedded store, with demo data.
run: $(STAMP)
	APP_ENV=$${APP_ENV:-development} SEED_DEMO=$${SEED_DEMO:-true} HOST=127.0.0.1 PORT=$(PORT) \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## Lint, then run the whole suite.
test: $(STAMP) lint
	$(BIN)/pytest

## Only the tenancy isolation tests.
test-multitenant: $(STAMP)
	$(BIN)/pytest -m multitenant

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
