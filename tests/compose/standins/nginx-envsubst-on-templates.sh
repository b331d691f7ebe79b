#!/bin/sh
# Render templates the way the official nginx image does: /etc/nginx/templates/*.template ->
# /etc/nginx/conf.d/, only the variables NGINX_ENVSUBST_FILTER matches (all when unset).
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
