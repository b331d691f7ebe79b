#!/usr/bin/env bash
# Install what the project needs and is missing: apt packages, the pinned virtual environment,
# the pinned npm packages. Safe to run again; it only does work when something is missing/changed.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# the browser tests drive Debian's chromium (Playwright's own browser download is not used)
[ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing apt packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts the packaged services; the project runs its own, on its own ports.
for service in redis-server nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    as_root systemctl stop "$service" || true
  fi
done

stamp=".venv/.installed-$(cat requirements.lock requirements-dev.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> creating the virtual environment (.venv) from requirements-dev.lock"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -r requirements-dev.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi

npm_stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$npm_stamp" ]; then
  echo "==> installing npm packages from package-lock.json"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$npm_stamp"
fi
reference_stamp="loadtests/reference/node/node_modules/.installed-$(sha256sum loadtests/reference/node/package-lock.json | cut -c1-16)"
if [ ! -f "$reference_stamp" ]; then
  echo "==> installing the bench's Node.js reference (loadtests/reference/node) from its lock file"
  npm ci --prefix loadtests/reference/node --no-audit --no-fund --loglevel=error
  touch "$reference_stamp"
fi
mkdir -p service/static/vendor
cp node_modules/socket.io-client/dist/socket.io.min.js service/static/vendor/socket.io.min.js
