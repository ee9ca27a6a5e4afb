#!/usr/bin/env bash
# Install what Switchboard needs on a fresh Debian machine: Debian packages (redis-server,
# espeak-ng, flite, chromium), a venv with the project and its dev tools. Idempotent and
# quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v flite >/dev/null 2>&1 || need_apt+=(flite)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
# The operator page's browser test drives the system Chromium (never `playwright install`).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
# Exactly what the lock files say (requirements/*.lock, made by `make lock`): every package
# pinned and hash-checked, the same on every machine; then the project itself, without deps.
stamp=.venv/.switchboard-installed
want=$(cat pyproject.toml requirements/build.lock requirements/dev.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing Python packages from requirements/dev.lock"
  pipi() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
  pipi --require-hashes --only-binary=:all: -r requirements/build.lock
  pipi --require-hashes -r requirements/dev.lock
  pipi --no-deps --no-build-isolation -e . > .venv/editable.log 2>&1 \
    || { cat .venv/editable.log >&2; exit 1; }
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
# openapi-python-client (the generated-client test) caps typer below Switchboard's own, so it
# gets a venv of its own, from requirements/codegen.lock (also made by `make lock`).
cstamp=.venv-codegen/.switchboard-installed
cwant=$(sha256sum requirements/codegen.lock | cut -d' ' -f1)
if [ ! -f "$cstamp" ] || [ "$(cat "$cstamp")" != "$cwant" ]; then
  echo "==> installing the client generator from requirements/codegen.lock"
  [ -x .venv-codegen/bin/python ] || "$PY" -m venv .venv-codegen
  .venv-codegen/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
    -r requirements/codegen.lock
  .venv-codegen/bin/python -m pip check
  echo "$cwant" > "$cstamp"
fi
