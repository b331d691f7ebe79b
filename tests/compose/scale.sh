#!/usr/bin/env bash
# tests/compose/scale.sh N: the compose cluster's node service to N replicas, as
# `docker compose up -d --scale node=N` does it. podman-compose 1.6 adds the missing replicas but
# leaves those numbered above N running, so those are stopped here (SIGTERM: they drain, within
# the service's stop_grace_period) and removed, as Compose v2 removes the highest numbers.
set -euo pipefail
# shellcheck source=tests/compose/compose.sh
. "$(dirname "$0")/compose.sh"
cd "$ROOT"
replicas=${1:-}
case $replicas in
  '' | *[!0-9]* | 0*) echo "configuration error: replicas of the node service must be a whole" \
                           "number of at least 1, got '$replicas'" >&2
                      exit 2 ;;
esac
"${COMPOSE[@]}" up -d --no-deps --scale "node=$replicas" node >>"$WORK/scale.log" 2>&1 \
  || { tail -20 "$WORK/scale.log" >&2; exit 1; }
surplus=$(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
            --filter label=com.docker.compose.service=node \
            --format '{{index .Labels "com.docker.compose.container-number"}} {{.Names}}' \
          | awk -v n="$replicas" '$1 > n {print $2}' | sort -r)
if [ -n "$surplus" ]; then
  # shellcheck disable=SC2086 # one name per word
  podman stop -t 20 $surplus >>"$WORK/scale.log" 2>&1
  # shellcheck disable=SC2086
  podman rm $surplus >>"$WORK/scale.log" 2>&1
fi
