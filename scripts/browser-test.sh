#!/usr/bin/env bash
# End-to-end test of the web client (src/web) in headless Chromium.
#
# Installs what it needs if missing (Debian's chromium; playwright-core,
# pinned in scripts/browser/package-lock.json, into .tools/browser), starts
# the server on a free loopback port, runs scripts/browser-test.mjs against
# it and stops the server however the run ends. Screenshots land in
# artifacts/screenshots/.
#
# PARLEY_BIN overrides the server binary (default target/release/parley,
# built if absent); it must accept --listen ADDR and --log-level LEVEL.
# stop_server runs from the EXIT trap, which shellcheck 0.9 cannot see.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools/browser
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
BIN=${PARLEY_BIN:-target/release/parley}

ensure_chromium() {
    [ -x "$CHROMIUM" ] && return
    echo "browser-test: installing chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get -o DPkg::Lock::Timeout=120 install -y -qq chromium >/dev/null
}

# Reinstalls only when the pinned lock file changes.
ensure_playwright() {
    local want
    want=$(sha256sum scripts/browser/package-lock.json | cut -d' ' -f1)
    if [ -d "$TOOLS/node_modules/playwright-core" ] &&
        [ "$(cat "$TOOLS/.lock-sha256" 2>/dev/null)" = "$want" ]; then
        return
    fi
    echo "browser-test: installing playwright-core" >&2
    mkdir -p "$TOOLS"
    cp scripts/browser/package.json scripts/browser/package-lock.json "$TOOLS/"
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >"$TOOLS/.lock-sha256"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_server() {
    local _
    for _ in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "browser-test: server exited" >&2; return 1; }
        curl -fsS -o /dev/null --max-time 1 "$BASE/" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "browser-test: server did not answer on $BASE within 10 s" >&2
    return 1
}

stop_server() {
    if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}

ensure_chromium
ensure_playwright
if [ ! -x "$BIN" ] && [ -z "${PARLEY_BIN:-}" ]; then
    cargo build --release --locked --bin parley
fi

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
trap stop_server EXIT
"$BIN" --listen "127.0.0.1:$PORT" --log-level warn --allow-guests &
SERVER_PID=$!
wait_for_server

# A crash or the outer timeout still ends in the summary line CI reads.
LOG=$(mktemp)
trap 'stop_server; rm -f "$LOG"' EXIT
rc=0
CHROMIUM="$CHROMIUM" BROWSER_TOOLS_DIR="$TOOLS" \
    timeout 90 node scripts/browser-test.mjs "$BASE" 2>&1 | tee "$LOG" || rc=$?
if ! grep -q '^browser: [0-9]* passed, [0-9]* failed$' "$LOG"; then
    echo "browser: 0 passed, 1 failed"
    rc=1
fi
exit "$rc"
