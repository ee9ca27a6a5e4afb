#!/usr/bin/env bash
# A whole offline call: local Realtime engine + server + carrier simulator + Redis.
# Stops everything it started, whatever happens. Arguments go to `switchboard call`
# (e.g. --json). Only the call's summary goes to stdout; progress goes to stderr, so
# `bash scripts/demo.sh --json | python -m json.tool` works.
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHBOARD_ENV=dev SWITCHBOARD_LOG_JSON=false SWITCHBOARD_LOG_LEVEL=${SWITCHBOARD_LOG_LEVEL:-WARNING}
PORT=${SWITCHBOARD_PORT:-8000}
ENGINE_PORT=${SWITCHBOARD_ENGINE_PORT:-8765}
export SWITCHBOARD_PORT=$PORT SWITCHBOARD_ENGINE_PORT=$ENGINE_PORT
export SWITCHBOARD_PUBLIC_BASE_URL=${SWITCHBOARD_PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}
SB=.venv/bin/switchboard
mkdir -p .run out
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
say() { echo "==> $*" >&2; }

say "migrating Redis and seeding the demo CRM/orders"
$SB migrate >&2
$SB seed-demo >&2
say "starting the local Realtime engine on :$ENGINE_PORT"
$SB engine > .run/engine.log 2>&1 & pids+=($!)
say "starting the server on :$PORT"
$SB serve > .run/server.log 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { say "server not ready; logs in .run/"; tail -20 .run/server.log .run/engine.log >&2; exit 1; }
say "placing a simulated call (caller: +15555550123 → Acme support +15550100000)"
status=0
$SB call --to +15550100000 --from +15555550123 --out out/agent.wav "$@" || status=$?
say "the agent's side of the call is in out/agent.wav"
exit $status
