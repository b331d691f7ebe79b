#!/usr/bin/env bash
# Install what the project needs and is missing, part by part:
#
#   scripts/bootstrap.sh [PART ...]     (no part: all of them; this is `make setup`)
#
#   cluster   redis-server, redis-cli and nginx from Debian's packages (make run, the tests)
#   browser   Debian's chromium (the browser tests drive it; Playwright's own download fails here)
#   compose   podman, runc, netavark (and the iptables it needs), aardvark-dns, debootstrap
#   k8s       kubectl from Debian's kubernetes-client (the tests render k8s/ with its kustomize)
#   venv      .venv from requirements-dev.lock, every file checked against its hash
#   npm       the pinned Socket.IO browser client, the bench's Node.js reference and the
#             protocol test suites (tests/conformance)
#
# Every part checks its tools first and installs only what is missing, so a second run does no
# work and runs no apt. Nothing the machine already runs is stopped or reconfigured: the local
# cluster uses ports of its own (scripts/cluster.py). If a tool is missing and cannot be installed
# (no apt-get, or neither root nor sudo), the script names each tool and its Debian package and
# exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_PARTS=(cluster browser compose k8s venv npm)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=("${ALL_PARTS[@]}")

# tool -> the Debian package that provides it; a tool is a command name or an absolute path
declare -A PACKAGE=(
  [redis-server]=redis-server [redis-cli]=redis-tools [nginx]=nginx-light
  [node]=nodejs [npm]=npm [python3-venv]=python3-venv [chromium]=chromium
  [podman]=podman [runc]=runc [/usr/lib/podman/netavark]=netavark
  [/usr/lib/podman/aardvark-dns]=aardvark-dns [iptables]=iptables [debootstrap]=debootstrap
  [kubectl]=kubernetes-client
)
declare -A TOOLS=(
  [cluster]="redis-server redis-cli nginx"
  [browser]="chromium"
  [compose]="podman runc /usr/lib/podman/netavark /usr/lib/podman/aardvark-dns iptables debootstrap"
  [k8s]="kubectl"
  [venv]="python3-venv"
  [npm]="node npm"
)

has_tool() {
  case "$1" in
    /*) [ -x "$1" ] ;;
    python3-venv) python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ;;
    chromium) [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 ;;
    # Debian keeps nginx and iptables in /usr/sbin, which is not on every user's PATH
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ;;
  esac
}

install_packages() {
  local runner=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then runner=(sudo); else runner=(false); fi
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [ "${runner[*]}" = false ]; then
    echo "error: these tools are missing and cannot be installed here (apt-get as root or with" \
         "sudo is needed):" >&2
    for tool in "$@"; do echo "  $tool (Debian package ${PACKAGE[$tool]})" >&2; done
    exit 1
  fi
  local packages=()
  for tool in "$@"; do packages+=("${PACKAGE[$tool]}"); done
  echo "==> installing apt packages: ${packages[*]}"
  "${runner[@]}" apt-get update -qq
  "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" \
    >/dev/null
  for tool in "$@"; do
    has_tool "$tool" || { echo "error: $tool is still missing after installing" \
                               "${PACKAGE[$tool]}" >&2; exit 1; }
  done
}

missing=()
for part in "${parts[@]}"; do
  [ -n "${TOOLS[$part]+set}" ] || { echo "error: unknown part '$part' (parts: ${ALL_PARTS[*]})" >&2
                                   exit 2; }
  for tool in ${TOOLS[$part]}; do has_tool "$tool" || missing+=("$tool"); done
done
[ ${#missing[@]} -eq 0 ] || install_packages "${missing[@]}"

wants() { local part; for part in "${parts[@]}"; do [ "$part" = "$1" ] && return 0; done; return 1; }

if wants venv; then
  stamp=".venv/.installed-$(cat requirements-dev.lock | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "==> installing the virtual environment (.venv) from requirements-dev.lock"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --require-hashes --only-binary=:all: \
      -r requirements-dev.lock
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
fi

if wants npm; then
  npm_stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
  if [ ! -f "$npm_stamp" ]; then
    echo "==> installing npm packages from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$npm_stamp"
  fi
  for locked in loadtests/reference/node tests/conformance/engine.io-v4 tests/conformance/socket.io-v5; do
    locked_stamp="$locked/node_modules/.installed-$(sha256sum $locked/package-lock.json | cut -c1-16)"
    if [ ! -f "$locked_stamp" ]; then
      echo "==> installing $locked's npm packages from its lock file"
      npm ci --prefix "$locked" --no-audit --no-fund --loglevel=error
      touch "$locked_stamp"
    fi
  done
  mkdir -p service/static/vendor
  cmp -s node_modules/socket.io-client/dist/socket.io.min.js service/static/vendor/socket.io.min.js \
    || cp node_modules/socket.io-client/dist/socket.io.min.js service/static/vendor/socket.io.min.js
fi
