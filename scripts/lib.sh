# shellcheck shell=bash
# Helpers shared by the scripts in this folder; source it, don't run it.
# Nothing here changes shell options: the caller sets `set -euo pipefail`.

# Print a TCP port on 127.0.0.1 that nothing listens on right now. The
# kernel picks it; there is a small window before the caller binds it.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_for_port PORT [TIMEOUT_SECONDS] [PID]
# Wait until something accepts TCP connections on 127.0.0.1:PORT. Fails
# after TIMEOUT_SECONDS (default 30), or at once if PID is given and that
# process has exited, so a server that crashed at start is not waited on.
wait_for_port() {
    local port=$1 timeout=${2:-30} pid=${3:-}
    local deadline=$((SECONDS + timeout))

    while ((SECONDS < deadline)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            echo "wait_for_port: process $pid exited before port $port opened" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "wait_for_port: nothing listening on 127.0.0.1:$port after ${timeout}s" >&2
    return 1
}
