#!/bin/sh
# Render templates the way the official nginx image does, then run the command.
set -eu
filter="${NGINX_ENVSUBST_FILTER:-}"
names=$(env | cut -d= -f1 | grep -E "${filter:-.}" || true)
defined=""
for name in $names; do defined="$defined \${$name}"; done
mkdir -p /etc/nginx/conf.d
for template in /etc/nginx/templates/*.template; do
  [ -f "$template" ] || continue
  output="/etc/nginx/conf.d/$(basename "$template" .template)"
  envsubst "$defined" < "$template" > "$output"
  echo "rendered $template -> $output"
done
exec "$@"
