# The two set-up commands: `make run` (the embedded stack and its demo) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast bench bench-doc bench-scale bench-quick worker clean bytecode

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,embedded]'
	touch $(STAMP)

# The project's modules compiled to bytecode beside them (current ones are skipped): the workflow sandbox
# re-imports a workflow's module for every run it replays or starts in a fresh sandbox, and where
# PYTHONDONTWRITEBYTECODE is set nothing else writes it, so each such import would compile the source again.
PACKAGES := activities api audit auth bench cli dashboard layout readmodel runtime starter tests workflows worker.py
bytecode: $(STAMP)
	$(PY) -m compileall -q -j 0 $(PACKAGES) > /dev/null

## make run [DEMO=once]: start Temporal, PostgreSQL and the worker, run the demo, serve until Ctrl-C
run: $(STAMP) bytecode
	$(PY) -m starter.stack $(if $(DEMO),--demo $(DEMO),)

## make test: the whole suite against the real time-skipping server, dev server and PostgreSQL
test: $(STAMP) bytecode
	bash deploy/ensure-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

## make test-fast: the workflows' rules on the time-skipping server, activities in memory: no PostgreSQL, seconds
test-fast: $(STAMP) bytecode
	$(PY) -m pytest tests/fast $(PYTEST_ARGS)

## make bench: every benchmark beside its baseline (minutes; run it on a quiet machine); figures to bench-results.json
bench: $(STAMP) bytecode
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.run --in-memory-too --profile bench-profile.txt $(BENCH_ARGS)

## make bench-doc: docs/benchmarks.md's generated table refreshed from the last make bench (bench-results.json)
bench-doc: $(STAMP)
	$(PY) -m bench.table bench-results.json --doc docs/benchmarks.md

## make bench-scale: 10,000 open referrals on one worker (the best part of an hour; nice it); figures to bench-scale.json
bench-scale: $(STAMP) bytecode
	$(PY) -m bench.run --only scale --json bench-scale.json $(BENCH_ARGS)

## make bench-quick: a few of each, to see the benchmarks work (the suite runs this too)
bench-quick: $(STAMP) bytecode
	$(PY) -m bench.run --quick --json bench-quick.json

## make worker: a worker alone, for TEMPORAL_ADDRESS / DATABASE_URL set by the caller
worker: $(STAMP) bytecode
	$(PY) worker.py

clean:
	rm -rf $(VENV) .data
