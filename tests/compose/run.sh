#!/usr/bin/env bash
# make compose-test: bring docker-compose.yml up with podman + podman-compose (no Docker engine or
# image registry here), run the cross-node checks against http://127.0.0.1:8080, restart a node
# container, scale the nodes 3 -> 5 -> 3 under traffic, check that Prometheus (the monitoring
# profile) scrapes every node and the front door, do it again on a Redis Cluster, then bring
# everything down and check nothing is left behind.
set -euo pipefail
# shellcheck source=tests/compose/compose.sh
. "$(dirname "$0")/compose.sh"
cd "$ROOT"
started=$(date +%s)
step() { echo "==> [$(( $(date +%s) - started ))s] $*"; }

[ "$(id -u)" -eq 0 ] || { echo "error: make compose-test needs root (rootful podman, debootstrap)" >&2
                         exit 1; }
step "checking the tools (podman, runc, netavark with iptables, aardvark-dns, debootstrap, .venv)"
scripts/bootstrap.sh compose venv

# Stand-ins are rebuilt when their Containerfile or a script they copy changes (a label holds the
# hash).
build_standin() {
  local name=$1 tag=$2 hash
  hash=$( (echo "$BASE_VERSION"; cat "tests/compose/standins/$name.Containerfile" tests/compose/standins/*.sh) | sha256sum | cut -c1-12)
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
# The images docker-compose.yml names, made from Debian's packages (Grafana is not in Debian).
PROMETHEUS_IMAGE=docker.io/prom/prometheus:v2.53.1
build_standin python localhost/rooms-python-base:bookworm
build_standin node docker.io/library/node:20-bookworm-slim
build_standin redis docker.io/library/redis:7.0-bookworm
build_standin nginx docker.io/library/nginx:1.27-bookworm
build_standin prometheus "$PROMETHEUS_IMAGE"
build_standin nginx-exporter docker.io/nginx/nginx-prometheus-exporter:1.4.0

mkdir -p "$WORK"
: >"$WORK/scale.log"
secret() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
cat > "$ENV_FILE" <<ENV
ENV=production
SECRET_KEY=$(secret)$(secret)
API_KEY=$(secret)$(secret)
REDIS_PASSWORD=$(secret)
BASE_IMAGE=localhost/rooms-python-base:bookworm
FRONT_DOOR_PORT=8080
PROMETHEUS_PORT=9090
RATE_LIMIT_PER_S=50
RATE_LIMIT_BURST=100
HEARTBEAT_INTERVAL_S=0.5
NODE_TTL_S=3
ENV
chmod 600 "$ENV_FILE"

cleanup() {
  step "bringing everything down"
  "${EVERYTHING[@]}" down -v -t 10 --remove-orphans >"$WORK/down.log" 2>&1 || true
  left=$(podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT" | wc -l)
  volumes=$(podman volume ls -q | grep -c "^${PROJECT}_" || true)
  networks=$(podman network ls --format '{{.Name}}' | grep -c "^${PROJECT}_" || true)
  echo "left behind: $left containers, $volumes volumes, $networks networks"
  rm -f "$ENV_FILE"
  if [ "$left$volumes$networks" != "000" ]; then echo "compose-test left things behind"; exit 1; fi
}
trap cleanup EXIT

step "building the project image from the Dockerfile (BASE_IMAGE=localhost/rooms-python-base:bookworm)"
"${COMPOSE[@]}" build node >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
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
front_door_reaches() {  # exactly $1 nodes answer through the front door (200 sticky keys)
  .venv/bin/python - "$1" <<'PY'
import json, sys, urllib.request as u
url = "http://127.0.0.1:8080/healthz?node_key=probe{}"
nodes = {json.load(u.urlopen(url.format(key), timeout=2))["node"] for key in range(200)}
sys.exit(len(nodes) != int(sys.argv[1]))
PY
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
run_checks() {  # pytest against the front door: the integration tests, or what is given
  # shellcheck disable=SC1090 # the env file this script wrote
  ( set -a; . "$ENV_FILE"; set +a
    CLUSTER_URL=http://127.0.0.1:8080 RESTART_NODE_COMMAND="podman restart -t 5 {node}" \
    SCALE_NODES_COMMAND="$ROOT/tests/compose/scale.sh {replicas}" \
    SCALE_REPORT="$WORK/scale-report.txt" \
      .venv/bin/pytest -q -p no:cacheprovider "${@:-tests/integration}" )
}
prometheus_sees() {  # $1 node targets and the nginx exporter up, every node's metrics and nginx's
  .venv/bin/python - "$1" <<'PY'
import json, sys, urllib.parse, urllib.request as u
api = "http://127.0.0.1:9090/api/v1/"
targets = json.load(u.urlopen(api + "targets?state=active", timeout=2))["data"]["activeTargets"]
up = [t["labels"]["job"] for t in targets if t["health"] == "up"]
def value(query):
    result = json.load(u.urlopen(api + "query?query=" + urllib.parse.quote(query), timeout=2))
    return [float(r["value"][1]) for r in result["data"]["result"]]
sys.exit(not (up.count("rooms-nodes") == len([t for t in targets if t["labels"]["job"] ==
         "rooms-nodes"]) == int(sys.argv[1]) and "nginx" in up
         and value("count(rooms_node_info)") == [int(sys.argv[1])] and value("nginx_up") == [1.0]))
PY
}
dashboard_queries() {  # every query of the Grafana dashboard runs on this Prometheus; prints how
  .venv/bin/python - <<'PY'  # many queries there are and how many returned data
import json, sys, urllib.parse, urllib.request as u
dashboard = json.load(open("monitoring/grafana/dashboards/rooms.json"))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
with_data = 0
for expr in exprs:
    url = "http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(expr)
    try:
        answer = json.load(u.urlopen(url, timeout=5))
    except Exception as error:
        sys.exit(f"the dashboard's query {expr!r} failed: {error}")
    with_data += bool(answer["data"]["result"])
print(f"{len(exprs)} queries ran, {with_data} with data")
PY
}

step "docker-compose.yml up (one Redis, the node service's 3 replicas)"
"${COMPOSE[@]}" up -d --no-deps >"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log"; exit 1; }
wait_until 120 "the front door to reach 3 nodes" front_door_reaches 3
step "the front door reaches every replica; the cross-node checks against http://127.0.0.1:8080"
run_checks tests/integration tests/compose/test_restart.py

step "scaling the nodes 3 -> 5 -> 3 under traffic (tests/compose/test_scale.py)"
run_checks tests/compose/test_scale.py
step "scaled: $(cat "$WORK/scale-report.txt")"
podman logs "${PROJECT}_nginx_1" 2>&1 | { grep "follow-nodes" || true; } | sed 's/^/    /'

step "the monitoring profile: Prometheus and the nginx exporter (Grafana is not in Debian and no" \
     "registry is reachable here: not started)"
podman run --rm --entrypoint promtool \
  -v "$ROOT/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" \
  "$PROMETHEUS_IMAGE" check config /etc/prometheus/prometheus.yml >"$WORK/promtool.log" 2>&1 \
  || { cat "$WORK/promtool.log"; exit 1; }
step "promtool check config:$(grep -o ' SUCCESS.*' "$WORK/promtool.log")"
"${MONITORING[@]}" up -d --no-deps prometheus nginx-exporter >"$WORK/up-monitoring.log" 2>&1 \
  || { tail -30 "$WORK/up-monitoring.log"; exit 1; }
wait_until 90 "Prometheus to scrape 3 nodes and the nginx exporter" prometheus_sees 3
step "Prometheus scrapes all 3 node replicas (rooms_node_info) and nginx by the exporter (nginx_up 1)"
step "the Grafana dashboard's queries on this Prometheus: $(dashboard_queries)"
"${MONITORING[@]}" down -v -t 10 --remove-orphans >"$WORK/down.log" 2>&1

step "docker-compose.yml with docker-compose.redis-cluster.yml up (a Redis Cluster)"
"${ON_REDIS_CLUSTER[@]}" up -d --no-deps redis redis-2 redis-3 redis-4 redis-5 redis-6 \
  >"$WORK/up-cluster.log" 2>&1 || { tail -30 "$WORK/up-cluster.log"; exit 1; }
for server in redis redis-2 redis-3 redis-4 redis-5 redis-6; do
  wait_until 60 "$server" redis_cli "$server" PING
done
"${ON_REDIS_CLUSTER[@]}" run --rm --no-deps redis-cluster-init >"$WORK/cluster-init.log" 2>&1 \
  || { tail -30 "$WORK/cluster-init.log"; exit 1; }
wait_until 60 "the Redis Cluster's replicas to be in sync" replicas_in_sync
"${ON_REDIS_CLUSTER[@]}" up -d --no-deps node nginx >>"$WORK/up-cluster.log" 2>&1 \
  || { tail -30 "$WORK/up-cluster.log"; exit 1; }
wait_until 120 "the front door to reach 3 nodes" front_door_reaches 3
step "the front door reaches every replica on the Redis Cluster; running the cross-node checks"
run_checks
step "compose-test passed"
