#!/usr/bin/env bash
# make compose-test: bring docker-compose.yml up with podman + podman-compose (no Docker engine or
# image registry here), run the cross-node checks against http://127.0.0.1:8080, restart a node
# container, then bring everything down and check nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CONTAINERS_CONF="$ROOT/tests/compose/containers.conf"
WORK="$ROOT/run/compose"
ENV_FILE="$WORK/compose.env"
PROJECT=rooms
COMPOSE=(.venv/bin/podman-compose --project-name "$PROJECT" --env-file "$ENV_FILE" -f docker-compose.yml)
ON_REDIS_CLUSTER=("${COMPOSE[@]}" -f docker-compose.redis-cluster.yml)
started=$(date +%s)
step() { echo "==> [$(( $(date +%s) - started ))s] $*"; }

[ "$(id -u)" -eq 0 ] || { echo "error: make compose-test needs root (rootful podman, debootstrap)" >&2
                         exit 1; }
step "checking the tools (podman, runc, netavark with iptables, aardvark-dns, debootstrap, .venv)"
scripts/bootstrap.sh compose venv

# Stand-ins are rebuilt when their Containerfile changes (its hash is part of a label).
build_standin() {
  local name=$1 tag=$2 hash
  hash=$( (echo "$BASE_VERSION"; cat "tests/compose/standins/$name.Containerfile" tests/compose/standins/nginx-entrypoint.sh) | sha256sum | cut -c1-12)
  if [ "$(podman image inspect --format '{{index .Labels "rooms.standin"}}' "$tag" 2>/dev/null)" != "$hash" ]; then
    step "building stand-in $tag from Debian's packages"
    podman build -q --label "rooms.standin=$hash" -f "tests/compose/standins/$name.Containerfile" \
      -t "$tag" tests/compose/standins >/dev/null
  fi
}

BASE_VERSION=2  # raise when the way the base image is made changes
if [ "$(podman image inspect --format '{{index .Labels "rooms.base"}}' localhost/rooms-debian-base:bookworm 2>/dev/null)" != "$BASE_VERSION" ]; then
  step "making a Debian base image with debootstrap (minbase, bookworm)"
  rootfs=$(mktemp -d)
  mirror=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -o -E 'https?://[^ ]+' | grep -v security | head -1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
  # Trust what this machine trusts (an egress proxy's CA, if any), so builds inside reach registries.
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || true
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  tar -C "$rootfs" -c . | podman import --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL rooms.base=$BASE_VERSION" - \
    localhost/rooms-debian-base:bookworm >/dev/null
  rm -rf "$rootfs"
fi
build_standin python localhost/rooms-python-base:bookworm
build_standin node docker.io/library/node:20-bookworm-slim
build_standin redis docker.io/library/redis:7.0-bookworm
build_standin nginx docker.io/library/nginx:1.27-bookworm

mkdir -p "$WORK"
secret() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
cat > "$ENV_FILE" <<ENV
ENV=production
SECRET_KEY=$(secret)$(secret)
API_KEY=$(secret)$(secret)
REDIS_PASSWORD=$(secret)
BASE_IMAGE=localhost/rooms-python-base:bookworm
FRONT_DOOR_PORT=8080
RATE_LIMIT_PER_S=50
RATE_LIMIT_BURST=100
HEARTBEAT_INTERVAL_S=0.5
NODE_TTL_S=3
ENV
chmod 600 "$ENV_FILE"

cleanup() {
  step "bringing everything down"
  "${ON_REDIS_CLUSTER[@]}" down -v -t 10 >"$WORK/down.log" 2>&1 || true
  left=$(podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT" | wc -l)
  volumes=$(podman volume ls -q | grep -c "^${PROJECT}_" || true)
  networks=$(podman network ls --format '{{.Name}}' | grep -c "^${PROJECT}_" || true)
  echo "left behind: $left containers, $volumes volumes, $networks networks"
  rm -f "$ENV_FILE"
  if [ "$left$volumes$networks" != "000" ]; then echo "compose-test left things behind"; exit 1; fi
}
trap cleanup EXIT

step "building the project image from the Dockerfile (BASE_IMAGE=localhost/rooms-python-base:bookworm)"
"${COMPOSE[@]}" build node-1 >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
step "image size: $(podman image inspect --format '{{.Size}}' rooms-service:latest | numfmt --to=iec)"

# Debian's podman 4.3 supports neither `condition: service_healthy` nor podman-compose's
# --requires chains (it fails on transitive dependencies): start in dependency order without them
# and wait for readiness here. Docker Compose v2 honours the conditions as written.
wait_until() {  # seconds, description, command...
  local deadline=$(( $(date +%s) + $1 )) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "timed out waiting for $what"; "${COMPOSE[@]}" ps; exit 1
    fi
    sleep 1
  done
}
front_door_ready() {
  .venv/bin/python -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:8080/readyz", timeout=2)'
}
redis_cli() { podman exec "${PROJECT}_$1_1" redis-cli "${@:2}"; }
replicas_in_sync() {  # every master of the Redis Cluster has its replica connected and in sync
  for server in redis redis-2 redis-3 redis-4 redis-5 redis-6; do
    info=$(redis_cli "$server" INFO replication) || return 1
    if grep -q role:master <<<"$info"; then
      grep -q connected_slaves:1 <<<"$info" && grep -q state=online <<<"$info" || return 1
    fi
  done
  redis_cli redis CLUSTER INFO | grep -q cluster_state:ok
}
run_checks() {  # the integration tests against the front door, then whatever else is given
  set -a; . "$ENV_FILE"; set +a
  CLUSTER_URL=http://127.0.0.1:8080 \
  RESTART_NODE_COMMAND="podman restart -t 5 ${PROJECT}_{node}_1" \
    .venv/bin/pytest -q -p no:cacheprovider tests/integration "$@"
}

step "docker-compose.yml up (one Redis)"
"${COMPOSE[@]}" up -d --no-deps >"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log"; exit 1; }
wait_until 120 "the front door" front_door_ready
step "the front door answers; running the cross-node checks against http://127.0.0.1:8080"
run_checks tests/compose
"${COMPOSE[@]}" down -v -t 10 >"$WORK/down.log" 2>&1

step "docker-compose.yml with docker-compose.redis-cluster.yml up (a Redis Cluster)"
"${ON_REDIS_CLUSTER[@]}" up -d --no-deps redis redis-2 redis-3 redis-4 redis-5 redis-6 \
  >"$WORK/up-cluster.log" 2>&1 || { tail -30 "$WORK/up-cluster.log"; exit 1; }
for server in redis redis-2 redis-3 redis-4 redis-5 redis-6; do
  wait_until 60 "$server" redis_cli "$server" PING
done
"${ON_REDIS_CLUSTER[@]}" run --rm --no-deps redis-cluster-init >"$WORK/cluster-init.log" 2>&1 \
  || { tail -30 "$WORK/cluster-init.log"; exit 1; }
wait_until 60 "the Redis Cluster's replicas to be in sync" replicas_in_sync
"${ON_REDIS_CLUSTER[@]}" up -d --no-deps node-1 node-2 node-3 nginx >>"$WORK/up-cluster.log" 2>&1 \
  || { tail -30 "$WORK/up-cluster.log"; exit 1; }
wait_until 120 "the front door" front_door_ready
step "the front door answers on the Redis Cluster; running the cross-node checks"
run_checks
step "compose-test passed"
