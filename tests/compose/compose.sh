# shellcheck shell=bash disable=SC2034 # used by the scripts that source this
# The compose proof's shared settings, sourced by run.sh and scale.sh: podman with this folder's
# containers.conf, podman-compose on the project's compose files, the proof's working folder.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CONTAINERS_CONF="$ROOT/tests/compose/containers.conf"
WORK="$ROOT/run/compose"
ENV_FILE="$WORK/compose.env"
PROJECT=rooms
COMPOSE=("$ROOT/.venv/bin/podman-compose" --project-name "$PROJECT" --env-file "$ENV_FILE"
         -f "$ROOT/docker-compose.yml")
ON_REDIS_CLUSTER=("${COMPOSE[@]}" -f "$ROOT/docker-compose.redis-cluster.yml")
MONITORING=("${COMPOSE[@]}" --profile monitoring)
EVERYTHING=("${ON_REDIS_CLUSTER[@]}" --profile monitoring)
