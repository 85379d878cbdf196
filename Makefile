# Two commands for a new user: `make run` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck contracts unit bench soak fuzz clean venv tools compiled

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Bytecode for the package, written once: with PYTHONDONTWRITEBYTECODE set (as on these
# machines) every start of the service or of a CLI command compiled it again (~0.25 s).
compiled: $(STAMP)
	@$(BIN)/python -m compileall -q points_service >/dev/null

run: compiled
	$(BIN)/points-service serve

lint: $(STAMP)
	$(BIN)/ruff check points_service tests bench
	$(BIN)/ruff format --check points_service tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# Debian's prometheus package: promtool checks the scrape and the alert rules, and a
# test scrapes the service with a real Prometheus. Debian's chromium (and a CJK font for
# the screenshots): the browser tests drive it with Playwright (tests/browser).
tools:
	@command -v promtool >/dev/null 2>&1 || { \
		echo "installing Debian's prometheus (promtool)"; \
		apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus >/dev/null; }; \
	}
	@command -v promtool >/dev/null 2>&1 || { echo "promtool missing: apt-get install prometheus"; exit 1; }
	@{ test -x /usr/bin/chromium && fc-list 2>/dev/null | grep -qi wqy; } || { \
		echo "installing Debian's chromium and a CJK font (browser tests)"; \
		apt-get install -y --no-install-recommends chromium fonts-wqy-microhei >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium fonts-wqy-microhei >/dev/null; }; \
	}
	@test -x /usr/bin/chromium || { echo "chromium missing: apt-get install chromium"; exit 1; }

test: lint typecheck contracts tools
	$(BIN)/points-service rules check rules
	$(BIN)/points-service leaderboards check leaderboards
	$(BIN)/pytest

bench: compiled
	$(BIN)/python bench/credit_load.py
	$(BIN)/python bench/board_load.py
	$(BIN)/python bench/import_load.py
	$(BIN)/python bench/report_load.py

# Ten minutes at half the measured capacity (not in CI): p99 over time, errors, memory.
# A trial: make soak SOAK_ARGS='--minutes 1 --probe 5 --no-record'
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Schemathesis over every operation of /schema with many more examples than make test's 5
# per operation (not in CI): make fuzz FUZZ_EXAMPLES=1000
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/http/test_fuzz.py -p no:cacheprovider -q

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
