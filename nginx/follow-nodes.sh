#!/bin/sh
# The front door follows the nodes as they come and go (`docker compose up --scale node=N`):
# every RESOLVE_INTERVAL_S it resolves NODES_DNS_NAME, which the engine's DNS answers with every
# replica's address, writes them sorted as the upstream's servers to NODES_FILE (which
# UPSTREAM_SERVERS includes) and reloads nginx when the set changed. nginx 1.27.3 and newer could
# do this itself (`resolve` in the upstream); Debian's 1.22 cannot.
#
# Run by the nginx image's entrypoint from /docker-entrypoint.d/ before nginx starts: it waits for
# the first addresses, then follows in the background. A reload keeps the connections that are
# open (WebSockets too) on the old workers until they close. An empty answer never empties the
# upstream: the last set stays. Does nothing when NODES_DNS_NAME is unset.
set -eu

NODES_DNS_NAME=${NODES_DNS_NAME:-}
[ -n "$NODES_DNS_NAME" ] || exit 0
NODES_PORT=${NODES_PORT:-8000}
RESOLVE_INTERVAL_S=${RESOLVE_INTERVAL_S:-2}
NODES_FILE=${NODES_FILE:-/etc/nginx/nodes/upstream.conf}

log() { echo "follow-nodes: $*"; }
refuse() { log "configuration error: $*" >&2; exit 1; }
is_number() {  # $1: value, $2: smallest, $3: largest
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ "${#1}" -le 5 ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}

case $NODES_DNS_NAME in
  *[!A-Za-z0-9.-]* | .* | -* | *. | *..*)
    refuse "NODES_DNS_NAME must be a DNS name (letters, digits, dots, hyphens)," \
           "got '$NODES_DNS_NAME'" ;;
esac
is_number "$NODES_PORT" 1 65535 || refuse "NODES_PORT must be a port (1-65535), got '$NODES_PORT'"
is_number "$RESOLVE_INTERVAL_S" 1 3600 \
  || refuse "RESOLVE_INTERVAL_S must be whole seconds (1-3600), got '$RESOLVE_INTERVAL_S'"
case ${UPSTREAM_SERVERS:-} in
  *"include $NODES_FILE;"*) ;;
  *) refuse "UPSTREAM_SERVERS must be 'include $NODES_FILE;' when NODES_DNS_NAME is set," \
            "got '${UPSTREAM_SERVERS:-}'" ;;
esac

servers() {  # the upstream's server lines for every address of the name, sorted; none if none
  getent ahostsv4 "$NODES_DNS_NAME" 2>/dev/null | cut -d' ' -f1 \
    | sort -u -t. -k1,1n -k2,2n -k3,3n -k4,4n \
    | sed "s/.*/    server &:$NODES_PORT max_fails=1 fail_timeout=5s;/"
}

addresses() { printf '%s\n' "$1" | sed 's/.*server \([^ ]*\) .*/\1/' | tr '\n' ' ' | sed 's/ $//'; }

write() {  # whole or not at all: nginx never reads half a file
  printf '%s\n' "$1" > "$NODES_FILE.new"
  mv "$NODES_FILE.new" "$NODES_FILE"
}

follow() {
  current=$1 kept=""
  while sleep "$RESOLVE_INTERVAL_S"; do
    found=$(servers)
    if [ -z "$found" ]; then
      [ -n "$kept" ] \
        || log "$NODES_DNS_NAME resolves to nothing; keeping the last nodes: $(addresses "$current")"
      kept=yes
      continue
    fi
    kept=""
    [ "$found" != "$current" ] || continue
    if ! write "$found"; then
      log "could not write $NODES_FILE; trying again"
    elif answer=$(nginx -s reload 2>&1); then
      log "nodes now $(addresses "$found") (were $(addresses "$current")); nginx reloaded"
      current=$found
    else
      log "nginx did not reload, trying again: $answer"
    fi
  done
}

mkdir -p "$(dirname "$NODES_FILE")"
until first=$(servers) && [ -n "$first" ]; do
  [ -n "${waiting:-}" ] || log "no address for $NODES_DNS_NAME yet (no node running?); waiting"
  waiting=yes
  sleep "$RESOLVE_INTERVAL_S"
done
write "$first"
log "nodes $(addresses "$first") from $NODES_DNS_NAME, checked every ${RESOLVE_INTERVAL_S}s"
follow "$first" </dev/null 2>&1 &
