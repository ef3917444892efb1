#!/usr/bin/env bash
# A local Parley cluster on loopback: one redis-server (AOF, fsync every
# second), three parley nodes using it, and nginx in front.
#
#   scripts/cluster.sh start [DIR]        start everything, print the URL
#   scripts/cluster.sh stop [DIR]         stop what `start` started
#   scripts/cluster.sh status [DIR]       ports, pids, alive or not
#   scripts/cluster.sh kill-node N [DIR]  kill -9 node N (1-based)
#   scripts/cluster.sh restart-node N [DIR]  start node N again, same port
#   scripts/cluster.sh kill-redis [DIR]   kill -9 redis-server
#   scripts/cluster.sh restart-redis [DIR]  start it again (replays the AOF)
#
# DIR is the run directory (default .tools/cluster): the state file
# `state` (key=value lines: ports, pids, URL), the rendered nginx.conf,
# Redis's data, and every log. Ports are free loopback ports picked at
# start. `stop` and the chaos commands only signal pids recorded in the
# state file, and only after checking that the pid's command line is the
# process that was started (pids get reused).
#
# Environment:
#   PARLEY_BIN           the server binary (default target/release/parley)
#   CLUSTER_NODES        number of parley nodes (default 3)
#   CLUSTER_NO_REDIS=1   start no redis-server and pass no --redis flag
#   CLUSTER_PARLEY_ARGS  extra node arguments, replacing the default
#                        `--redis @REDIS_URL@` (@REDIS_URL@ is substituted)
#   CLUSTER_LOG_LEVEL    parley --log-level (default info)
#   CLUSTER_ALLOW_GUESTS=1  start nodes with --allow-guests (name-only
#                        access, for tests and load tests)
#   The nodes share a random session key, kept in DIR/session.key.
#   CLUSTER_WAIT_SECS    bound on every wait (default 30)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"

parley_bin=${PARLEY_BIN:-$root/target/release/parley}
nodes=${CLUSTER_NODES:-3}
wait_secs=${CLUSTER_WAIT_SECS:-30}

usage() {
    sed -n '4,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "cluster: $*" >&2
    exit 1
}

# --- state file --------------------------------------------------------------

# state_get KEY: the value recorded for KEY, or nothing.
state_get() {
    [[ -f $state ]] || return 0
    sed -n "s/^$1=//p" "$state" | tail -n 1
}

# state_set KEY VALUE: replace or append one line, atomically.
state_set() {
    local tmp=$state.tmp
    { grep -v "^$1=" "$state" 2>/dev/null || true; echo "$1=$2"; } >"$tmp"
    mv "$tmp" "$state"
}

# --- processes ---------------------------------------------------------------

# cmdline PID: the process's arguments joined by spaces, or nothing.
cmdline() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# owns PID PATTERN: the pid runs and its command line matches PATTERN (an
# extended regex), so it is still the process this script started.
owns() {
    local pid=$1 pattern=$2
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
        [[ $(cmdline "$pid") =~ $pattern ]]
}

node_pattern() {
    local port
    port=$(state_get "node$1_port")
    echo "parley .*--listen 127\.0\.0\.1:$port( |$)"
}

# redis-server rewrites its title to "redis-server 127.0.0.1:PORT".
redis_pattern() {
    echo "redis-server 127\.0\.0\.1:$(state_get redis_port)( |$)"
}

# The nginx master's title keeps its arguments, which name our config.
nginx_pattern() {
    echo "nginx: master process .*-c $(regex_quote "$run/nginx.conf")( |$)"
}

# regex_quote TEXT: TEXT with every extended-regex metacharacter escaped.
regex_quote() {
    printf '%s' "$1" | sed 's/[][\\.^$*+?(){}|]/\\&/g'
}

# The node count recorded at start (0 before any start).
recorded_nodes() {
    local count
    count=$(state_get nodes)
    echo "${count:-0}"
}

# wait_gone PID SECONDS: true once PID has exited.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# stop_pid NAME PID PATTERN: SIGTERM, a bounded wait, then SIGKILL; only if
# the pid still matches PATTERN.
stop_pid() {
    local name=$1 pid=$2 pattern=$3
    if ! owns "$pid" "$pattern"; then
        [[ -z $pid ]] || echo "cluster: $name (pid $pid) not running"
        return 0
    fi
    kill -TERM "$pid"
    if ! wait_gone "$pid" "$wait_secs"; then
        echo "cluster: $name (pid $pid) ignored SIGTERM; killing" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || die "$name (pid $pid) survived SIGKILL"
    fi
    echo "cluster: stopped $name (pid $pid)"
}

# spawn LOG COMMAND...: start COMMAND in its own session, detached from the
# caller's terminal and pipes (a caller piping into tee must not wait for
# it), and print its pid.
spawn() {
    local log=$1
    shift
    setsid "$@" </dev/null >>"$log" 2>&1 &
    echo $!
}

# --- components --------------------------------------------------------------

start_redis() {
    local port pid
    port=$(state_get redis_port)
    mkdir -p "$run/redis"
    # Loopback bind: protected mode stays on and never gets in the way.
    # No RDB snapshots; the AOF alone is the durability under test.
    pid=$(spawn "$run/redis.log" redis-server --bind 127.0.0.1 \
        --port "$port" --dir "$run/redis" --appendonly yes \
        --appendfsync everysec --save '' --daemonize no)
    state_set redis_pid "$pid"
    wait_for_port "$port" "$wait_secs" "$pid" ||
        die "redis-server did not start; see $run/redis.log"
    wait_redis_ready "$port" "$pid"
    echo "cluster: redis-server pid $pid on 127.0.0.1:$port"
}

# A restarted Redis accepts connections while it still loads the AOF and
# answers LOADING until done.
wait_redis_ready() {
    local port=$1 pid=$2 deadline=$((SECONDS + wait_secs))
    until [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; do
        kill -0 "$pid" 2>/dev/null || die "redis-server exited; see $run/redis.log"
        ((SECONDS < deadline)) || die "redis-server not ready after ${wait_secs}s"
        sleep 0.1
    done
}

# The node arguments are kept one per line in the run directory so that
# restart-node starts the node exactly as before.
write_node_args() {
    local args=()
    if [[ -n ${CLUSTER_PARLEY_ARGS+set} ]]; then
        # Split on any whitespace, newlines included; no quoting.
        read -r -d '' -a args \
            <<<"${CLUSTER_PARLEY_ARGS//@REDIS_URL@/$(redis_url)}" || true
    elif [[ ${CLUSTER_NO_REDIS:-0} != 1 ]]; then
        args=(--redis "$(redis_url)")
    fi
    # Every node must sign and accept the same session tokens.
    if [[ ! -s $run/session.key ]]; then
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$run/session.key")
    fi
    args+=(--session-key-file "$run/session.key")
    # nginx runs here: believe its X-Forwarded-For for per-IP limits.
    args+=(--trusted-proxies 127.0.0.1)
    if [[ ${CLUSTER_ALLOW_GUESTS:-0} == 1 ]]; then
        args+=(--allow-guests)
    fi
    args+=(--log-level "${CLUSTER_LOG_LEVEL:-info}")
    printf '%s\n' "${args[@]}" >"$run/node.args"
}

redis_url() {
    echo "redis://127.0.0.1:$(state_get redis_port)/0"
}

start_node() {
    local n=$1 port pid args
    port=$(state_get "node${n}_port")
    mapfile -t args <"$run/node.args"
    pid=$(spawn "$run/node$n.log" "$parley_bin" \
        --listen "127.0.0.1:$port" "${args[@]}")
    state_set "node${n}_pid" "$pid"
    wait_for_port "$port" "$wait_secs" "$pid" ||
        die "node $n did not start; last lines of $run/node$n.log:
$(tail -n 5 "$run/node$n.log")"
    echo "cluster: node $n pid $pid on 127.0.0.1:$port"
}

render_nginx_conf() {
    local servers='' n
    for ((n = 1; n <= nodes; n++)); do
        servers+="        server 127.0.0.1:$(state_get "node${n}_port")"
        servers+=" max_fails=1 fail_timeout=5s;"$'\n'
    done
    local nofile
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited ]] || ((nofile > 65536)) && nofile=65536
    python3 - "$root/nginx/local.conf.template" "$run/nginx.conf" \
        "$run" "$(state_get nginx_port)" "${servers%$'\n'}" \
        "$root/nginx" "$nofile" <<'PY'
import sys
template, out, run, port, servers, nginx_dir, nofile = sys.argv[1:]
text = open(template).read()
for key, value in (("@RUN_DIR@", run), ("@PORT@", port),
                   ("@UPSTREAM_SERVERS@", servers),
                   ("@NGINX_DIR@", nginx_dir),
                   ("@RLIMIT_NOFILE@", nofile),
                   ("@WORKER_CONNECTIONS@", str(min(16384, int(nofile) // 2)))):
    text = text.replace(key, value)
open(out, "w").write(text)
PY
}

start_nginx() {
    local port pid
    port=$(state_get nginx_port)
    mkdir -p "$run/nginx-tmp"
    render_nginx_conf
    # -e: the error log before the config is read; nginx's compiled-in
    # /var/log/nginx path is not ours.
    nginx -p "$run/" -e "$run/nginx-error.log" -c "$run/nginx.conf" -t \
        >"$run/nginx-check.log" 2>&1 ||
        die "nginx rejected $run/nginx.conf: $(cat "$run/nginx-check.log")"
    pid=$(spawn "$run/nginx.log" nginx -p "$run/" \
        -e "$run/nginx-error.log" -c "$run/nginx.conf")
    state_set nginx_pid "$pid"
    wait_for_port "$port" "$wait_secs" "$pid" ||
        die "nginx did not start; see $run/nginx-error.log"
    echo "cluster: nginx pid $pid on 127.0.0.1:$port"
}

# wait_http URL: bounded wait for a 2xx answer from URL.
wait_http() {
    local deadline=$((SECONDS + wait_secs))
    until curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || die "$1 failing after ${wait_secs}s"
        sleep 0.2
    done
}

# Start reports success once every node is ready (connected to Redis; a
# node without /readyz, answering 404, counts as ready when alive) and
# nginx reaches them.
check_ready() {
    local url=$1 n
    for ((n = 1; n <= nodes; n++)); do
        wait_node_ready "$n"
    done
    wait_http "$url/healthz"
}

wait_node_ready() {
    local node status
    node="http://127.0.0.1:$(state_get "node$1_port")"
    status=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' \
        "$node/readyz" || true)
    if [[ $status == 404 ]]; then
        wait_http "$node/healthz"
    else
        wait_http "$node/readyz"
    fi
}

# --- commands ----------------------------------------------------------------

any_alive() {
    local n
    owns "$(state_get nginx_pid)" "$(nginx_pattern)" && return 0
    owns "$(state_get redis_pid)" "$(redis_pattern)" && return 0
    for ((n = 1; n <= $(recorded_nodes); n++)); do
        owns "$(state_get "node${n}_pid")" "$(node_pattern "$n")" && return 0
    done
    return 1
}

# Distinct free ports: the kernel may hand out a just-released one twice.
pick_ports() {
    local -a taken=()
    local key port
    for key in "$@"; do
        port=$(free_port)
        while [[ " ${taken[*]} " == *" $port "* ]]; do
            port=$(free_port)
        done
        taken+=("$port")
        state_set "$key" "$port"
    done
}

on_start_exit() {
    ((${1} == 0)) || cmd_stop >&2
    exit "$1"
}

cmd_start() {
    [[ -x $parley_bin ]] ||
        die "$parley_bin missing; run cargo build --release first"
    command -v nginx >/dev/null || die "nginx not installed (apt-get install nginx-light)"
    if [[ -f $state ]] && any_alive; then
        die "already running from $run; run: $0 stop $run"
    fi

    mkdir -p "$run"
    rm -f "$state" "$run"/*.log
    state_set run_dir "$run"
    state_set nodes "$nodes"
    state_set parley_bin "$parley_bin"
    local keys=(nginx_port) n
    [[ ${CLUSTER_NO_REDIS:-0} == 1 ]] || keys+=(redis_port)
    for ((n = 1; n <= nodes; n++)); do
        keys+=("node${n}_port")
    done
    pick_ports "${keys[@]}"

    # A half-started cluster is stopped again, not left running.
    trap 'on_start_exit $?' EXIT
    if [[ ${CLUSTER_NO_REDIS:-0} != 1 ]]; then
        command -v redis-server >/dev/null ||
            die "redis-server not installed (apt-get install redis-server)"
        start_redis
    fi
    write_node_args
    for ((n = 1; n <= nodes; n++)); do
        start_node "$n"
    done
    start_nginx

    local url
    url="http://127.0.0.1:$(state_get nginx_port)"
    state_set url "$url"
    check_ready "$url"
    trap - EXIT
    echo "cluster: state in $state"
    echo "$url"
}

cmd_stop() {
    [[ -f $state ]] || { echo "cluster: nothing recorded in $run"; return 0; }
    local n
    # nginx first, so no new connection reaches a node that is stopping.
    stop_pid nginx "$(state_get nginx_pid)" "$(nginx_pattern)"
    for ((n = 1; n <= $(recorded_nodes); n++)); do
        stop_pid "node $n" "$(state_get "node${n}_pid")" "$(node_pattern "$n")"
    done
    stop_pid redis-server "$(state_get redis_pid)" "$(redis_pattern)"
}

cmd_status() {
    [[ -f $state ]] || die "no cluster state in $run"
    local n alive=0 total=0
    row() {
        local name=$1 port=$2 pid=$3 pattern=$4 state_word=down
        total=$((total + 1))
        if owns "$pid" "$pattern"; then
            state_word=up
            alive=$((alive + 1))
        fi
        printf '%-13s 127.0.0.1:%-6s pid %-8s %s\n' \
            "$name" "$port" "${pid:--}" "$state_word"
    }
    row nginx "$(state_get nginx_port)" "$(state_get nginx_pid)" "$(nginx_pattern)"
    for ((n = 1; n <= $(recorded_nodes); n++)); do
        row "node $n" "$(state_get "node${n}_port")" \
            "$(state_get "node${n}_pid")" "$(node_pattern "$n")"
    done
    if [[ -n $(state_get redis_port) ]]; then
        row redis-server "$(state_get redis_port)" "$(state_get redis_pid)" \
            "$(redis_pattern)"
    fi
    echo "url           $(state_get url)"
    echo "$alive of $total processes up"
    ((alive == total))
}

node_number() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > $(recorded_nodes))); then
        die "no node '$1' (nodes 1..$(recorded_nodes))"
    fi
}

cmd_kill_node() {
    local n=$1 pid
    node_number "$n"
    pid=$(state_get "node${n}_pid")
    owns "$pid" "$(node_pattern "$n")" || die "node $n is not running"
    kill -KILL "$pid"
    wait_gone "$pid" "$wait_secs" || die "node $n (pid $pid) still alive"
    echo "cluster: killed node $n (pid $pid)"
}

cmd_restart_node() {
    local n=$1
    node_number "$n"
    stop_pid "node $n" "$(state_get "node${n}_pid")" "$(node_pattern "$n")"
    start_node "$n"
    wait_node_ready "$n"
}

cmd_kill_redis() {
    local pid
    [[ -n $(state_get redis_port) ]] || die "this cluster runs without Redis"
    pid=$(state_get redis_pid)
    owns "$pid" "$(redis_pattern)" || die "redis-server is not running"
    kill -KILL "$pid"
    wait_gone "$pid" "$wait_secs" || die "redis-server (pid $pid) still alive"
    echo "cluster: killed redis-server (pid $pid)"
}

cmd_restart_redis() {
    [[ -n $(state_get redis_port) ]] || die "this cluster runs without Redis"
    stop_pid redis-server "$(state_get redis_pid)" "$(redis_pattern)"
    start_redis
}

# --- main --------------------------------------------------------------------

(($# >= 1)) || usage
command=$1
shift
case $command in
    kill-node | restart-node)
        (($# >= 1)) || usage
        node=$1
        shift
        ;;
esac
(($# <= 1)) || usage
mkdir -p "${1:-$root/.tools/cluster}"
run=$(cd "${1:-$root/.tools/cluster}" && pwd)
state=$run/state

case $command in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    kill-node) cmd_kill_node "$node" ;;
    restart-node) cmd_restart_node "$node" ;;
    kill-redis) cmd_kill_redis ;;
    restart-redis) cmd_restart_redis ;;
    *) usage ;;
esac
