#!/usr/bin/env bash
# Parley vs the Node peer (shared/peers/node-ws-redis), side by side:
# same load generator, same redis-server, same machine, one run each.
#
#   scripts/bench-compare.sh [OUT_DIR] [BENCH...]
#
# BENCH is any of: idle cpu rate saturation slow churn light (default:
# all).
# Every figure goes to OUT_DIR (default artifacts/bench) as one JSON file
# per run, named TARGET-BENCH[-RATE].json, with the command beside it in
# commands.txt. Everything runs on 127.0.0.1 and is stopped on exit.
#
# Environment:
#   PARLEY_BIN  server binary (default target/release/parley)
#   LT_BIN      load tester (default target/release/parley-loadtest)
#   PEER_DIR    a copy of the peer with node_modules installed (default
#               .tools/peer; made with npm install there if missing)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"

out=$(mkdir -p "${1:-$root/artifacts/bench}" && cd "${1:-$root/artifacts/bench}" && pwd)
shift || true
benches=("$@")
((${#benches[@]})) || benches=(idle cpu rate saturation slow churn light)

parley_bin=${PARLEY_BIN:-$root/target/release/parley}
lt_bin=${LT_BIN:-$root/target/release/parley-loadtest}
peer_dir=${PEER_DIR:-$root/.tools/peer}
peer_src=$root/../shared/peers/node-ws-redis

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

ensure_peer() {
    [[ -d $peer_dir/node_modules ]] && return 0
    mkdir -p "$peer_dir"
    cp "$peer_src"/{server.js,package.json} "$peer_dir/"
    chmod u+w "$peer_dir"/*
    (cd "$peer_dir" && npm install --no-audit --no-fund)
}

start_redis() {
    redis_port=$(free_port)
    # No persistence: both servers pay the same Redis, and the disk is
    # not what is measured.
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
        --appendonly no --daemonize no >"$out/redis.log" 2>&1 &
    pids+=($!)
    wait_for_port "$redis_port" 10 $!
}

# start_servers TARGET N: N processes of TARGET on one Redis; sets
# server_pids and urls.
start_servers() {
    local target=$1 n=$2 i port
    server_pids=()
    urls=()
    redis-cli -p "$redis_port" flushall >/dev/null
    for ((i = 1; i <= n; i++)); do
        port=$(free_port)
        if [[ $target == parley ]]; then
            "$parley_bin" --listen "127.0.0.1:$port" \
                --redis "redis://127.0.0.1:$redis_port/0" \
                --session-key-file "$out/session.key" --allow-guests \
                --message-rate 1000000 --max-conns-per-ip 100000 \
                --log-level warn >"$out/parley$i.log" 2>&1 &
        else
            (cd "$peer_dir" && PORT=$port REDIS_PORT=$redis_port \
                HISTORY=stream exec node server.js) >"$out/peer$i.log" 2>&1 &
        fi
        pids+=($!)
        server_pids+=($!)
        urls+=(--url "ws://127.0.0.1:$port/ws")
        wait_for_port "$port" 20 $!
    done
}

stop_servers() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    sleep 1
}

# lt NAME ARGS...: one load-test run, JSON to OUT/NAME.json.
lt() {
    local name=$1 proto=() p
    shift
    [[ $target == peer ]] && proto=(--protocol custom)
    local pid_args=()
    for p in "${server_pids[@]}"; do
        pid_args+=(--server-pid "$p")
    done
    local cmd=("$lt_bin" "${urls[@]}" "${pid_args[@]}" "${proto[@]}" --quiet --json "$@")
    echo "$target-$name: ${cmd[*]}" >>"$out/commands.txt"
    echo "bench: $target-$name" >&2
    "${cmd[@]}" >"$out/$target-$name.json" || true
}

# Per-target rates for the step-up and past saturation (msg/s into
# 4 rooms of 1000 members: deliveries/s = 1000 x rate).
rates_parley=(50 100 200 300 400 600)
rates_peer=(25 50 75 100 150)
over_parley=1000
over_peer=300

run_target() {
    target=$1
    local bench rate rates over
    for bench in "${benches[@]}"; do
        case $bench in
            idle) # per process: one server process
                start_servers "$target" 1
                lt idle idle -n 10000 --rooms 100 --hold 5
                stop_servers ;;
            cpu)
                start_servers "$target" 2
                lt cpu fanout --rooms 4 --members 1000 --rate 50 --duration 10 --grace 5
                stop_servers ;;
            rate)
                start_servers "$target" 2
                rates="rates_$target[@]"
                for rate in "${!rates}"; do
                    lt "rate-$rate" fanout --rooms 4 --members 1000 --rate "$rate" \
                        --duration 8 --grace 5
                done
                stop_servers ;;
            saturation)
                start_servers "$target" 2
                over="over_$target"
                lt "saturation-${!over}" fanout --rooms 4 --members 1000 \
                    --rate "${!over}" --duration 8 --grace 5
                stop_servers ;;
            slow) # 10 members stop reading; 4 KB texts fill their
                # buffers (kernel ~4 MB, then the server's own queue) in
                # ~15 s. Parley cuts them with 1013; the rest must lose
                # nothing and keep their latency.
                start_servers "$target" 2
                lt slow fanout --rooms 2 --members 100 --slow-members 10 \
                    --rate 200 --size 4000 --duration 25 --grace 5
                stop_servers ;;
            churn)
                start_servers "$target" 2
                lt churn churn -c 32 --duration 10
                stop_servers ;;
            light)
                start_servers "$target" 2
                lt light fanout --rooms 4 --members 10 --rate 20 --duration 10 --grace 2
                stop_servers ;;
            *) echo "bench: unknown $bench" >&2; exit 2 ;;
        esac
    done
}

ensure_peer
[[ -s $out/session.key ]] ||
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$out/session.key")
: >"$out/commands.txt"
start_redis
run_target parley
run_target peer
echo "bench: results in $out" >&2
