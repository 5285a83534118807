#!/bin/sh
# The container's roles: the command's first word chooses what this container runs.
set -eu

role="${1:-worker}"
if [ "$#" -gt 0 ]; then shift; fi

case "$role" in
    worker) exec python -m worker "$@" ;;
    api) exec python -m api "$@" ;;
    codec-server) exec python -m api.codec_server "$@" ;;
    migrate) exec python -m readmodel "$@" ;;
    schedules) exec python -m starter.schedules "$@" ;;
    keys) exec python -m runtime.keys "$@" ;;
    referrals) exec referrals "$@" ;;
    # probe PORT PATH: exit 0 when http://127.0.0.1:PORT/PATH answers 2xx (a health check without curl).
    probe) exec python -c 'import sys, urllib.request; urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=5)' "$@" ;;
    *)
        echo "unknown role '$role': one of worker, api, codec-server, migrate, schedules, keys, referrals, probe PORT PATH" >&2
        exit 64
        ;;
esac
