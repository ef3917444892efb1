#!/usr/bin/env bash
# The project's one test command: bash scripts/test.sh
#
# Runs named steps in order and stops at the first that fails: system
# packages, rustfmt, clippy, release build, tests, the Autobahn conformance
# suite against `parley --echo`, and the browser tests when they exist.
# Each step's output goes to the terminal and to artifacts/logs/; other
# artifacts (Autobahn reports, server logs) land under artifacts/ too.
#
# `bash scripts/test.sh autobahn` runs only the named steps, in the order
# given; a step does not run the ones it depends on (autobahn needs build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source scripts/lib.sh

artifacts=$root/artifacts
logs=$artifacts/logs
summary=()

# --- steps -----------------------------------------------------------------

apt_updated=false

# apt and dpkg are chatty: their output goes to artifacts/logs/apt.log and
# is shown only when they fail.
apt_quiet() {
    if ! "$@" >>"$logs/apt.log" 2>&1; then
        echo "failed: $*; last lines of $logs/apt.log:" >&2
        tail -n 30 "$logs/apt.log" >&2
        return 1
    fi
}

apt_update_once() {
    if ! $apt_updated; then
        apt_quiet apt-get update
        apt_updated=true
    fi
}

apt_install() {
    echo "installing: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt_update_once
    apt_quiet apt-get install -y \
        --no-install-recommends "$@"
}

# Install the system packages the steps need, each only if its command is
# missing, so a prepared machine makes no network calls at all.
ensure_packages() {
    local wanted=()
    command -v cc >/dev/null || wanted+=(build-essential)
    command -v pkg-config >/dev/null || wanted+=(pkg-config)
    command -v redis-server >/dev/null || wanted+=(redis-server)
    command -v curl >/dev/null || wanted+=(curl)
    command -v chromium >/dev/null || wanted+=(chromium)
    command -v node >/dev/null || wanted+=(nodejs npm)
    if ((${#wanted[@]} > 0)); then
        apt_install "${wanted[@]}"
    fi

    # nginx-light is the small build; newer Debian releases only have nginx.
    if ! command -v nginx >/dev/null; then
        apt_update_once
        if apt-cache show nginx-light >/dev/null 2>&1; then
            apt_install nginx-light
        else
            apt_install nginx
        fi
    fi

    ensure_rust

    local cmd
    for cmd in cc pkg-config redis-server nginx curl chromium node cargo; do
        printf '%-13s %s\n' "$cmd" "$(command -v "$cmd")"
    done
}

# Puts a rustup toolchain in ~/.cargo on PATH when cargo is not already
# there: rustup's installer adds it to the shell profiles, which this
# shell has not read. Called before every step, as each runs in a
# subshell that inherits this one's PATH.
use_cargo_env() {
    if ! command -v cargo >/dev/null && [[ -f $HOME/.cargo/env ]]; then
        # shellcheck source=/dev/null
        source "$HOME/.cargo/env"
    fi
}

# No cargo at all (a fresh Debian machine): rustup's stable toolchain for
# the current user, minimal profile plus the rustfmt and clippy the fmt and
# clippy steps run. Needs curl and cc, installed above. cargo-nextest stays
# optional: without it the test step uses cargo test.
ensure_rust() {
    use_cargo_env
    if command -v cargo >/dev/null; then
        return 0
    fi
    echo "installing: Rust stable with rustup (into ~/.rustup and ~/.cargo)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --default-toolchain stable
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
    rustup component add rustfmt clippy
}

# Python tools the Rust tests call: prometheus_client's text parser checks
# /metrics (tests/ops.rs). A venv under .tools/py, pinned, made once.
prometheus_client_pin='prometheus-client==0.26.0'

ensure_python_tools() {
    local py=$root/.tools/py/bin/python
    if [[ -x $py ]] && "$py" -c 'import prometheus_client' 2>/dev/null &&
        "$py" -m pip show prometheus-client 2>/dev/null |
        grep -qx "Version: ${prometheus_client_pin#*==}"; then
        echo "python tools: $prometheus_client_pin already in .tools/py"
        return 0
    fi
    echo "python tools: installing $prometheus_client_pin into .tools/py"
    python3 -m venv "$root/.tools/py"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$root/.tools/py/bin/pip" install --quiet "$prometheus_client_pin"
}

step_packages() {
    ensure_packages
    ensure_python_tools
}

step_fmt() {
    cargo fmt --all -- --check
}

step_clippy() {
    cargo clippy --workspace --all-targets --locked -- -D warnings
}

step_build() {
    cargo build --workspace --release --locked --bins
}

# nextest's closing "Summary ... N tests run: N passed" line is what CI
# reads to count the tests; keep it in the output. nextest cannot run doc
# tests, so cargo runs those first, leaving nextest's summary last.
step_test() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo test --workspace --release --locked --doc
        cargo nextest run --workspace --release --locked
    else
        cargo test --workspace --release --locked
    fi
}

server_pid=

stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}

step_autobahn() {
    local out=$artifacts/autobahn port
    bash scripts/setup-autobahn.sh

    mkdir -p "$out"
    port=$(free_port)
    trap stop_server EXIT
    target/release/parley --echo --listen "127.0.0.1:$port" \
        --max-message-bytes 16777216 --max-outbound-bytes 33554432 \
        --log-level warn \
        >"$out/parley.log" 2>&1 &
    server_pid=$!
    if ! wait_for_port "$port" 30 "$server_pid"; then
        tail -n 20 "$out/parley.log" >&2
        return 1
    fi

    bash scripts/autobahn.sh "ws://127.0.0.1:$port/echo" "$out"

    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "parley exited during the run; see $out/parley.log" >&2
        return 1
    fi
    stop_server
}

step_browser() {
    if [[ -f scripts/browser-test.sh ]]; then
        bash scripts/browser-test.sh
    else
        echo "scripts/browser-test.sh not present: skipped"
    fi
}

# Autobahn again, through nginx (nginx/local.conf.template, rendered by
# scripts/cluster.sh) in front of one echo node: nginx must pass every
# frame unchanged and in time, up to Autobahn's 16 MiB messages.
cluster_run=

stop_cluster() {
    if [[ -n $cluster_run ]]; then
        bash scripts/cluster.sh stop "$cluster_run"
    fi
    cluster_run=
}

step_autobahn-nginx() {
    local out=$artifacts/autobahn-nginx port node_args
    node_args="--echo --max-message-bytes 16777216"
    node_args+=" --max-outbound-bytes 33554432"
    bash scripts/setup-autobahn.sh

    cluster_run=$out/cluster
    trap stop_cluster EXIT
    CLUSTER_NODES=1 CLUSTER_NO_REDIS=1 CLUSTER_LOG_LEVEL=warn \
        CLUSTER_PARLEY_ARGS=$node_args \
        bash scripts/cluster.sh start "$cluster_run"
    port=$(sed -n 's/^nginx_port=//p' "$cluster_run/state")

    AUTOBAHN_AGENT=parley-nginx \
        bash scripts/autobahn.sh "ws://127.0.0.1:$port/echo" "$out"

    # Fails when nginx or the node died during the run.
    bash scripts/cluster.sh status "$cluster_run"
    stop_cluster
}

# Containerfile (hadolint), manifests/ (kustomize | kubernetes-validate),
# conf/parley.service (systemd-analyze), nginx/parley.conf (nginx -t).
step_deploy-lint() {
    bash scripts/deploy-lint.sh
}

# --- runner ----------------------------------------------------------------

# run_step NAME FUNCTION: run FUNCTION in a subshell with errexit in force
# (it would be off inside an `if`), tee its output to artifacts/logs/NAME.log,
# print its time, and stop everything if it failed. Signals end the subshell
# through `exit`, so its EXIT trap (used to stop servers) always runs.
run_step() {
    local name=$1 fn=$2 log=$logs/$1.log start status
    use_cargo_env
    echo
    echo "==> $name"
    start=$SECONDS
    set +e
    (
        set -e
        trap 'exit 130' INT
        trap 'exit 143' TERM
        "$fn"
    ) 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    local took=$((SECONDS - start))
    if ((status != 0)); then
        echo "==> $name FAILED (status $status) after ${took}s; log: $log"
        summary+=("$name: FAILED ${took}s")
        print_summary
        echo "test.sh: FAILED at step $name after $((SECONDS - run_start))s"
        exit 1
    fi
    echo "==> $name ok (${took}s)"
    summary+=("$name: ok ${took}s")
}

print_summary() {
    echo
    echo "==> steps"
    printf '    %s\n' "${summary[@]}" | tee "$artifacts/summary.txt"
}

all_steps=(packages fmt clippy build test autobahn autobahn-nginx deploy-lint
    browser)
steps=("$@")
if ((${#steps[@]} == 0)); then
    steps=("${all_steps[@]}")
fi
for name in "${steps[@]}"; do
    if ! declare -F "step_$name" >/dev/null; then
        echo "usage: $0 [STEP...]; steps, in order: ${all_steps[*]}" >&2
        exit 2
    fi
done

mkdir -p "$logs"
run_start=$SECONDS
for name in "${steps[@]}"; do
    run_step "$name" "step_$name"
done
print_summary
echo "test.sh: all ${#summary[@]} steps ok in $((SECONDS - run_start))s"
