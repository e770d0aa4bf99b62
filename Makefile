# `make run` and `make test` set everything up on a fresh machine, then act.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

# pip-audit lives in its own environment inside .venv: its dependencies stay out of medops' lock.
AUDIT := $(VENV)/audit
PIP_AUDIT_VERSION := 2.10.1

.PHONY: run test lint audit bench setup tesseract redis chromium lock clean

run: setup
	$(BIN)/medops

# Three workers on the two cores: most of the suite's time is tests waiting on real time (Groq's minute windows,
# fleet drills, gateways, terminals), which a third worker overlaps; the CPU-bound tests are short.
test: setup
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -n 3 --dist worksteal

lint: setup audit
	$(BIN)/ruff check medops core console tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# Known advisories against the pinned packages fail; a registry out of reach only warns.
audit: $(STAMP)
	@test -x $(AUDIT)/bin/pip-audit || { $(PYTHON) -m venv $(AUDIT) && $(AUDIT)/bin/python -m pip install -q \
		--disable-pip-version-check pip-audit==$(PIP_AUDIT_VERSION); } || true
	@scripts/audit-lock $(AUDIT)/bin/pip-audit requirements.lock

bench: setup
	$(BIN)/pytest tests/bench -s -q -o addopts="" -o python_files="bench_*.py" --timeout=1800

setup: $(STAMP) tesseract redis chromium

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

tesseract:
	@scripts/ensure-tesseract

redis:
	@scripts/ensure-redis

# Headless Chromium drives `medops serve` in its tests (skipped, saying why, where it cannot be installed).
chromium:
	@scripts/ensure-chromium

# Re-pin after changing dependencies in pyproject.toml.
lock:
	rm -rf /tmp/medops-lock && $(PYTHON) -m venv /tmp/medops-lock
	/tmp/medops-lock/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	/tmp/medops-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
