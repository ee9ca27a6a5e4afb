# Switchboard: `make demo` runs a whole call offline, `make test` runs the tests.
.PHONY: setup lock redis demo test check fmt bench clean

setup:
	@bash scripts/setup.sh

# Refresh the lock files from pyproject.toml's ranges (universal: every platform's wheels, hashed).
lock:
	@test -x .venv/bin/uv || bash scripts/setup.sh
	.venv/bin/uv pip compile requirements/build.in --universal --generate-hashes \
	  --python-version 3.11 --custom-compile-command "make lock" -q -o requirements/build.lock $(LOCK_ARGS)
	.venv/bin/uv pip compile pyproject.toml --extra dev --universal --generate-hashes \
	  --python-version 3.11 --custom-compile-command "make lock" -q -o requirements/dev.lock $(LOCK_ARGS)
	.venv/bin/uv pip compile requirements/codegen.in --universal --generate-hashes \
	  --python-version 3.11 --custom-compile-command "make lock" -q -o requirements/codegen.lock $(LOCK_ARGS)
	.venv/bin/uv pip compile pyproject.toml --universal --generate-hashes -c requirements/dev.lock \
	  --python-version 3.11 --custom-compile-command "make lock" -q -o requirements/runtime.lock $(LOCK_ARGS)

redis: setup
	@bash scripts/ensure_redis.sh

demo: redis
	@bash scripts/demo.sh

# The suite on parallel workers (pytest-xdist): most tests wait on real sockets and real-time
# calls, so 3 workers keep a 2-core machine busy (4 were faster still, but loaded it enough
# to make timing-sensitive tests flaky). Tests marked xdist_group share a worker.
# PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= 3
test: redis
	.venv/bin/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

check: setup
	.venv/bin/ruff format --check app switchboard_engine switchboard_sim bench flows tools migrations tests scripts
	.venv/bin/ruff check app switchboard_engine switchboard_sim bench flows tools migrations tests scripts
	.venv/bin/mypy app switchboard_engine switchboard_sim bench flows tools migrations
	.venv/bin/hadolint Dockerfile
	.venv/bin/python scripts/check_deploy.py

fmt: setup
	.venv/bin/ruff format app switchboard_engine switchboard_sim bench flows tools migrations tests scripts
	.venv/bin/ruff check --fix app switchboard_engine switchboard_sim bench flows tools migrations tests scripts

bench: redis
	.venv/bin/python -m bench

clean:
	rm -rf .run out .pytest_cache .mypy_cache .ruff_cache
