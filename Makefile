# Thin wrappers around the `damai` command; see README.md.
PYTHON ?= python3
VENV   := .venv
DAMAI  := $(VENV)/bin/damai
export DEBIAN_FRONTEND := noninteractive

.PHONY: install up run test down status lint bench fuzz clean-state

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || (apt-get update -qq && apt-get install -y -qq python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

## The whole system with demo data: stack up, migrate, seed, API + worker in the foreground.
run: install
	$(DAMAI) run

## The test suite against the real stack (brings it up first).
test: up lint
	$(VENV)/bin/pytest

up: install
	$(DAMAI) stack up
	$(DAMAI) db migrate
	$(DAMAI) db verify

down:
	$(DAMAI) stack down

status:
	$(DAMAI) stack status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench: up
	$(VENV)/bin/python -m bench.projector_throughput
	$(VENV)/bin/python -m bench.id_throughput
	$(VENV)/bin/python -m bench.program_detail
	$(VENV)/bin/python -m bench.search_latency --fallback
	$(VENV)/bin/python -m bench.token_verify
	$(VENV)/bin/python -m bench.users
	$(VENV)/bin/python -m bench.seat_map
	$(VENV)/bin/python -m bench.purchase
	$(VENV)/bin/python -m bench.allocator_consumers
	$(VENV)/bin/python -m bench.payments

## The API fuzzer with a heavy budget and a fresh random seed (make test runs it lightly).
fuzz: up
	DAMAI_FUZZ_EXAMPLES=$${DAMAI_FUZZ_EXAMPLES:-300} DAMAI_FUZZ_SEED=$${DAMAI_FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')} \
		$(VENV)/bin/pytest -s tests/e2e/test_api_fuzz.py

clean-state: down
	rm -rf .stack
