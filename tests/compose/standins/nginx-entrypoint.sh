#!/bin/sh
# The official nginx image's entrypoint, as far as the project uses it: when the command is nginx,
# run the executable /docker-entrypoint.d/*.sh in order (a failing one stops the start), then the
# command. 20-envsubst-on-templates.sh renders the templates, as the image's own script does.
set -eu
if [ "${1:-}" = nginx ]; then
  for script in $(find /docker-entrypoint.d/ -follow -type f -name '*.sh' -print | sort -V); do
    if [ -x "$script" ]; then
      echo "$0: launching $script"
      "$script"
    else
      echo "$0: ignoring $script, not executable"
    fi
  done
fi
exec "$@"
