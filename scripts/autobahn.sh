#!/usr/bin/env bash
# Run the Autobahn TestSuite fuzzing client against a WebSocket echo
# endpoint and judge the result: scripts/autobahn.sh URL OUTDIR
#
#   URL     the echo endpoint, e.g. ws://127.0.0.1:9001/echo
#   OUTDIR  receives the spec (fuzzingclient.json), wstest's log
#           (wstest.log) and the reports (reports/, with index.json)
#
# Cases 1.* to 10.*; 12.* and 13.* test permessage-deflate, which the
# server does not offer. Needs scripts/setup-autobahn.sh to have run.
# Environment: AUTOBAHN_TIMEOUT (seconds, default 600), AUTOBAHN_AGENT
# (the name in the reports, default parley).
set -euo pipefail

if (($# != 2)); then
    echo "usage: $0 URL OUTDIR" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wstest=$root/.tools/autobahn/bin/wstest
url=$1
mkdir -p "$2"
outdir=$(cd "$2" && pwd)
spec=$outdir/fuzzingclient.json
log=$outdir/wstest.log
timeout_secs=${AUTOBAHN_TIMEOUT:-600}

if [[ ! -x $wstest ]]; then
    echo "autobahn: $wstest missing; run scripts/setup-autobahn.sh" >&2
    exit 1
fi

rm -rf "$outdir/reports"
python3 - "$spec" "$url" "$outdir/reports" "${AUTOBAHN_AGENT:-parley}" <<'PY'
import json, sys
spec_path, url, reports, agent = sys.argv[1:]
spec = {
    "outdir": reports,
    "servers": [{"agent": agent, "url": url}],
    "cases": [f"{n}.*" for n in range(1, 11)],
    "exclude-cases": ["12.*", "13.*"],
    "exclude-agent-cases": {},
}
with open(spec_path, "w") as f:
    json.dump(spec, f, indent=2)
    f.write("\n")
PY

echo "autobahn: fuzzing $url (cases 1.*-10.*, limit ${timeout_secs}s," \
    "log $log)"
start=$SECONDS
status=0
# timeout(1) runs in its own process group, out of reach of a terminal's
# Ctrl-C, so pass interrupts on to it by hand.
(cd "$outdir" && exec timeout --kill-after=10 "$timeout_secs" \
    "$wstest" --mode fuzzingclient --spec "$spec") >"$log" 2>&1 &
wstest_pid=$!
trap 'kill "$wstest_pid" 2>/dev/null; exit 130' INT
trap 'kill "$wstest_pid" 2>/dev/null; exit 143' TERM
wait "$wstest_pid" || status=$?
trap - INT TERM
echo "autobahn: wstest finished in $((SECONDS - start))s with status $status"

if ((status != 0)); then
    if ((status == 124)); then
        echo "autobahn: wstest timed out after ${timeout_secs}s" >&2
    fi
    echo "autobahn: last lines of $log:" >&2
    grep -v '^Cases = ' "$log" | tail -n 20 >&2 || true
fi
# wstest reports a server it cannot reach in its log, then exits 0.
grep -E '^Connection to .* failed' "$log" | sort | uniq -c >&2 || true
echo "autobahn: reports in $outdir/reports (index.html to browse)"
if [[ ! -f $outdir/reports/index.json ]]; then
    echo "autobahn: no report written" >&2
    echo "autobahn: 0 passed, 0 failed"
    exit 1
fi

check_status=0
python3 "$root/scripts/autobahn-check.py" "$outdir/reports/index.json" ||
    check_status=$?
if ((status != 0 || check_status != 0)); then
    exit 1
fi
