#!/bin/bash
# Entry point of the redis stand-in: `redis-server ARGS` runs as the redis user with protected mode off, as the
# official image does; any other command runs as given.
set -euo pipefail
if [ "${1:0:1}" = "-" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = "redis-server" ]; then
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis /data 2>/dev/null || true
        exec setpriv --reuid=redis --regid=redis --init-groups "$@" --protected-mode no
    fi
    exec "$@" --protected-mode no
fi
exec "$@"
