# Switchboard: `make demo` runs a whole call offline, `make test` runs the tests.
.PHONY: setup redis demo test check fmt bench clean

setup:
	@bash scripts/setup.sh

redis: setup
	@bash scripts/ensure_redis.sh

demo: redis
	@bash scripts/demo.sh

test: redis
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

check: setup
	.venv/bin/ruff format --check app flows tools migrations tests scripts
	.venv/bin/ruff check app flows tools migrations tests scripts
	.venv/bin/mypy app

fmt: setup
	.venv/bin/ruff format app flows tools migrations tests scripts
	.venv/bin/ruff check --fix app flows tools migrations tests scripts

bench: redis
	.venv/bin/python -m app.bench

clean:
	rm -rf .run out .pytest_cache .mypy_cache .ruff_cache
