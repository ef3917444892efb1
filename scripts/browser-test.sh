#!/usr/bin/env bash
# End-to-end test of the web client (src/web) in headless Chromium.
#
# Installs what it needs if missing (Debian's chromium and redis-server;
# playwright-core, pinned in scripts/browser/package-lock.json, into
# .tools/browser), builds the server if absent, then runs
# scripts/browser-test.mjs, which starts redis-server and the server itself
# on free loopback ports (so it can restart the server mid-test) and stops
# them however the run ends. Screenshots land in artifacts/screenshots/,
# server and redis logs in artifacts/browser/.
#
# PARLEY_BIN overrides the server binary (default target/release/parley,
# built if absent); it must accept --listen, --log-level, --redis and
# --session-key.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools/browser
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
BIN=${PARLEY_BIN:-target/release/parley}
# The .mjs bounds itself at 110 s; this catches a hung node.
RUN_TIMEOUT=130

apt_install() {
    echo "browser-test: installing $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get -o DPkg::Lock::Timeout=120 install -y -qq "$@" >/dev/null
}

ensure_chromium() {
    [ -x "$CHROMIUM" ] || apt_install chromium
}

ensure_redis() {
    command -v redis-server >/dev/null || apt_install redis-server
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

ensure_chromium
ensure_redis
ensure_playwright
if [ ! -x "$BIN" ] && [ -z "${PARLEY_BIN:-}" ]; then
    cargo build --release --locked --bin parley
fi

# A crash or the outer timeout still ends in the summary line CI reads.
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
rc=0
CHROMIUM="$CHROMIUM" BROWSER_TOOLS_DIR="$TOOLS" PARLEY_BIN="$BIN" \
    timeout -k 5 "$RUN_TIMEOUT" node scripts/browser-test.mjs 2>&1 | tee "$LOG" || rc=$?
if ! grep -q '^browser: [0-9]* passed, [0-9]* failed$' "$LOG"; then
    echo "browser: 0 passed, 1 failed"
    rc=1
fi
exit "$rc"
