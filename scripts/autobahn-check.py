#!/usr/bin/env python3
"""Judge an Autobahn TestSuite report: scripts/autobahn-check.py INDEX_JSON.

INDEX_JSON is the reports/index.json that `wstest -m fuzzingclient` writes.
A case passes when its `behavior` is OK, NON-STRICT or INFORMATIONAL and its
`behaviorClose` is OK or INFORMATIONAL. Prints one line per failing case,
a tally of each behavior, then `autobahn: N passed, M failed`. Exits 1 if a
case failed or if no case ran. Standard library only.
"""

import collections
import json
import sys

PASSING_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASSING_CLOSE = {"OK", "INFORMATIONAL"}


def case_key(case_id):
    """Sort "9.10.2" after "9.2.1": compare the dotted parts as numbers."""
    return [int(p) if p.isdigit() else p for p in case_id.split(".")]


def main(argv):
    if len(argv) != 2:
        print("usage: autobahn-check.py REPORTS/index.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print(f"autobahn-check: cannot read {argv[1]}: {e}", file=sys.stderr)
        return 1

    # Agent names only need showing when one report holds several.
    show_agent = len(index) > 1
    tally = collections.Counter()
    close_tally = collections.Counter()
    passed = failed = 0

    for agent in sorted(index):
        cases = index[agent]
        for case_id in sorted(cases, key=case_key):
            result = cases[case_id]
            behavior = result.get("behavior", "MISSING")
            close = result.get("behaviorClose", "MISSING")
            tally[behavior] += 1
            close_tally[close] += 1
            if behavior in PASSING_BEHAVIOR and close in PASSING_CLOSE:
                passed += 1
                continue
            failed += 1
            name = f"{agent} {case_id}" if show_agent else case_id
            print(
                f"FAIL {name}: behavior={behavior} behaviorClose={close}"
                f" remoteCloseCode={result.get('remoteCloseCode')}"
            )

    def line(counter):
        return " ".join(f"{k}={v}" for k, v in sorted(counter.items()))

    print(f"behavior tally: {line(tally) or 'none'}")
    print(f"behaviorClose tally: {line(close_tally) or 'none'}")
    if passed + failed == 0:
        print("autobahn-check: the report holds no cases", file=sys.stderr)
    print(f"autobahn: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
