# The two commands: `make serve` and `make test`. Both do all the set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: serve test install db lint typecheck bench clean postgres chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

db: $(STAMP)
	$(BIN)/intake db upgrade

serve: db
	$(BIN)/intake serve --host $(HOST) --port $(PORT)

# PostgreSQL is part of the test bed: start it when it is installed and down.
postgres:
	@if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start || true; \
		for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi

# The browser tests drive Debian's Chromium through Playwright (no browser is downloaded): install it when it is
# missing and we may (root with apt-get); otherwise say what to install, and those tests skip with that reason.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
				|| echo "note: could not install chromium: the browser tests will be skipped"; \
		else \
			echo "note: /usr/bin/chromium is missing: the browser tests will be skipped (as root: apt-get install chromium)"; \
		fi; \
	fi

test: $(STAMP) postgres chromium
	$(BIN)/ruff check intake tests
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check intake tests

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) chromium
	$(BIN)/intake bench ingest
	$(BIN)/intake bench console

clean:
	rm -rf $(VENV) var build *.egg-info
