#!/usr/bin/env python3
"""Log-in latency and throughput with the auth worker pool saturated,
and chat latency on the same node with and without that load.

Usage: python3 scripts/bench-login.py [--server target/release/parley]
       [--loadtest target/release/parley-loadtest] [--workers 0]
       [--clients 8] [--seconds 10]

Starts its own server on a free loopback port (accounts on, guests allowed
for the load tester's chat clients), signs up `clients` users, then runs
the load tester's fanout twice for `seconds`: once alone, once while
`clients` threads log in back to back. Prints both chat latency figures
and the log-in latency percentiles and rate. Bounded in time; stops what
it started.
"""

import argparse
import json
import socket
import subprocess
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def fanout(loadtest, port, pid, seconds):
    out = subprocess.run(
        [loadtest, "--url", f"ws://127.0.0.1:{port}/ws", "--server-pid", str(pid),
         "--json", "--quiet", "fanout", "--rooms", "4", "--members", "25",
         "--rate", "100", "--duration", str(seconds), "--grace", "2"],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    report = json.loads(out.stdout)
    return {k: report.get(k) for k in (
        "latency_p50_us", "latency_p99_us", "latency_max_us", "lost", "delivered")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="target/release/parley")
    ap.add_argument("--loadtest", default="target/release/parley-loadtest")
    ap.add_argument("--workers", type=int, default=0,
                    help="auth_workers; 0 (the server default) is cores minus one")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [args.server, "--listen", f"127.0.0.1:{port}", "--log-level", "warn",
         "--allow-guests", "--message-rate", "1000000",
         "--auth-workers", str(args.workers), "--auth-queue", "256",
         "--login-attempts-per-ip", "1000000", "--login-attempts-per-user", "1000000"],
    )
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        users = [f"bench{i}" for i in range(args.clients)]
        for u in users:
            assert post(port, "/api/signup", {"username": u, "password": "correct horse battery"}) == 201

        quiet = fanout(args.loadtest, port, server.pid, args.seconds)

        stop = threading.Event()
        latencies, statuses = [], []
        lock = threading.Lock()

        def hammer(user):
            while not stop.is_set():
                t = time.perf_counter()
                status = post(port, "/api/login", {"username": user, "password": "correct horse battery"})
                with lock:
                    latencies.append(time.perf_counter() - t)
                    statuses.append(status)

        threads = [threading.Thread(target=hammer, args=(u,)) for u in users]
        start = time.perf_counter()
        for t in threads:
            t.start()
        busy = fanout(args.loadtest, port, server.pid, args.seconds)
        elapsed = time.perf_counter() - start
        stop.set()
        for t in threads:
            t.join(timeout=60)

        latencies.sort()
        pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
        print(json.dumps({
            "auth_workers": args.workers,
            "concurrent_login_clients": args.clients,
            "logins": len(latencies),
            "logins_ok": statuses.count(200),
            "logins_per_sec": round(len(latencies) / elapsed, 1),
            "login_p50_ms": round(pct(0.50), 1),
            "login_p99_ms": round(pct(0.99), 1),
            "chat_without_logins": quiet,
            "chat_during_logins": busy,
        }, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
