#!/usr/bin/env bash
# Install the Autobahn TestSuite (wstest) into .tools/autobahn, a Python 2.7
# virtualenv: the suite is Python 2 code. Idempotent: does nothing when
# .tools/autobahn/bin/wstest already runs and was built from the current
# scripts/autobahn-requirements.txt.
#
# Python 2.7 comes from pyenv; set AUTOBAHN_PYTHON2 to use another one.
# virtualenv 20.22 dropped support for creating 2.7 environments, so an
# older virtualenv is installed first into a small Python 3 venv.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements=$root/scripts/autobahn-requirements.txt
tools=$root/.tools
venv=$tools/autobahn
bootstrap=$tools/virtualenv-py3
stamp=$venv/.requirements.sha256
virtualenv_pin='virtualenv==20.21.1'

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

find_python2() {
    local candidates=()
    if [[ -n ${AUTOBAHN_PYTHON2:-} ]]; then
        candidates+=("$AUTOBAHN_PYTHON2")
    fi
    if command -v pyenv >/dev/null; then
        candidates+=("$(pyenv root)/versions/2.7.18/bin/python2.7")
    fi
    candidates+=(/root/.pyenv/versions/2.7.18/bin/python2.7 python2.7)

    local py
    for py in "${candidates[@]}"; do
        if command -v "$py" >/dev/null && "$py" -c 'import sys
assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    echo "setup-autobahn: no CPython 2.7 found (tried: ${candidates[*]})" >&2
    return 1
}

is_installed() {
    [[ -f $stamp ]] &&
        [[ $(cat "$stamp") == "$(sha256sum <"$requirements")" ]] &&
        "$venv/bin/wstest" --autobahnversion >/dev/null 2>&1
}

if is_installed; then
    echo "setup-autobahn: $("$venv/bin/wstest" --autobahnversion | tail -n1)" \
        "already in .tools/autobahn"
    exit 0
fi

python2=$(find_python2)
mkdir -p "$tools"

if ! "$bootstrap/bin/virtualenv" --version 2>/dev/null | grep -q '^virtualenv 20\.21\.'; then
    echo "setup-autobahn: installing $virtualenv_pin into .tools/virtualenv-py3"
    rm -rf "$bootstrap"
    python3 -m venv "$bootstrap"
    "$bootstrap/bin/pip" install --quiet "$virtualenv_pin"
fi

# A half-built environment is worse than none: start clean, and write the
# stamp only once wstest has run.
echo "setup-autobahn: creating .tools/autobahn with $python2"
rm -rf "$venv"
"$bootstrap/bin/virtualenv" --quiet --python "$python2" "$venv"
"$venv/bin/pip" install --quiet --no-python-version-warning -r "$requirements"
"$venv/bin/wstest" --autobahnversion
sha256sum <"$requirements" >"$stamp"
echo "setup-autobahn: done"
