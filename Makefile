# The two commands: `make run` and `make test`. Everything else is for maintainers.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install migrate lint bench bench-webhook loadtest e2e clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(FLASK) db upgrade

# The app and a background worker (mail, schedules) together; Ctrl-C stops both. Links in
# mail (and Checkout's return URLs) use the address printed below unless PUBLIC_BASE_URL is set.
run: migrate
	@$(FLASK) users demo
	@echo "Serving on http://$(HOST):$(PORT)  (sandbox checkout: no real payments)"
	@echo "Mail outbox: http://$(HOST):$(PORT)/dev/mail"
	@export PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)}; \
	$(FLASK) worker & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(FLASK) run --host $(HOST) --port $(PORT)

# The browser test needs Debian's Chromium; without it, say so loudly and run the rest.
CHROMIUM_PATH ?= /usr/bin/chromium

# axe-core (accessibility rules) for the browser test, from npm, pinned by the lock file.
AXE := tests/e2e/node_modules/axe-core/axe.min.js
$(AXE): tests/e2e/package.json tests/e2e/package-lock.json
	npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
	touch $@

test: install
	@if [ -x "$(CHROMIUM_PATH)" ]; then $(MAKE) --no-print-directory $(AXE) && $(BIN)/pytest; \
	elif [ -n "$$CI_REQUIRE_E2E" ]; then echo "$(CHROMIUM_PATH) is missing" >&2; exit 1; else \
	  echo "*** $(CHROMIUM_PATH) is missing: the browser test is NOT run (apt-get install chromium) ***"; \
	  $(BIN)/pytest -m "not e2e"; fi

# Benchmarks against a local PostgreSQL (BENCH_DATABASE_URL); add modules to BENCH_MODULES.
BENCH_MODULES ?= tests.bench.bench_webhook tests.bench.bench_usage tests.bench.cpu_per_request tests.bench.bench_pages tests.bench.bench_holds

bench: install
	@for module in $(BENCH_MODULES); do $(BIN)/python -m $$module || exit 1; done

bench-webhook: install
	$(BIN)/python -m tests.bench.bench_webhook

e2e: install $(AXE)
	$(BIN)/pytest -m e2e

loadtest: install
	$(BIN)/python -m tests.bench.loadtest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache tests/e2e/node_modules
