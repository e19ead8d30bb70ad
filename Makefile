# notifyq: every task in one place. `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: install demo test lint typecheck check check-invariants fuzz bench bench-dispatch bench-enqueue bench-memory bench-pacing bench-callbacks bench-scale clean

# uv (from PyPI) manages the virtual environment from uv.lock; it is bootstrapped into .tools/ when missing
.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

install: .venv/.installed

demo: install
	$(RUN) notifyq demo

# the suite, with branch coverage held to the floor in pyproject.toml ([tool.coverage.report] fail_under)
test: install
	$(RUN) pytest --cov --cov-report=term

# ruff, then the import contracts in pyproject.toml ([tool.importlinter]: layers, no cycles, pure policies)
lint: install
	$(RUN) ruff check src tests $(wildcard bench)
	$(RUN) ruff format --check src tests $(wildcard bench)
	$(RUN) lint-imports --no-cache

typecheck: install
	$(RUN) mypy src

check: lint typecheck test

# break each invariant on a copy of src/ and check its tests go red (docs/testing.md)
check-invariants: install
	$(RUN) python tests/invariants/mutations.py --baseline

# schemathesis against the served OpenAPI document, longer than the suite's cut (docs/testing.md, "Fuzzing")
fuzz: install
	rm -f .notifyq/fuzz-report.txt
	NOTIFYQ_FUZZ_EXAMPLES=$${NOTIFYQ_FUZZ_EXAMPLES:-300} NOTIFYQ_FUZZ_TIMEOUT=$${NOTIFYQ_FUZZ_TIMEOUT:-420} \
		NOTIFYQ_FUZZ_REPORT=.notifyq/fuzz-report.txt \
		$(RUN) pytest -p no:cacheprovider -q tests/fuzz/test_api_fuzz.py; \
		status=$$?; cat .notifyq/fuzz-report.txt 2>/dev/null; exit $$status

# a whole run at the default sizes writes bench/results/latest.json and details-*.json; any other, partial.json.
# dispatch and callbacks run on SQLite and, when the server at NOTIFYQ_BENCH_POSTGRES_URL (default: the local
# one) answers, on PostgreSQL too; BENCH_DATABASE=sqlite|postgres|both chooses instead (docs/benchmarks.md)
BENCH_DATABASE ?= auto

bench: install
	$(RUN) python -m bench.run all --database $(BENCH_DATABASE)

bench-dispatch bench-enqueue bench-memory bench-pacing bench-callbacks: install
	$(RUN) python -m bench.run $(@:bench-%=%) --database $(BENCH_DATABASE)

# how cost grows (workers, many senders, a 1,000,000-recipient intake): merges scale.* into bench/results/latest.json
bench-scale: install
	$(RUN) python -m bench.scale

clean:
	rm -rf .venv .tools .notifyq .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage
