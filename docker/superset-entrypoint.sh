#!/bin/sh
# Superset in the foreground for docker compose. superset/provision starts it detached (as on a developer's machine:
# initialise the metadata DB once, import superset/bundle/ pointed at PIPELINE_MONGO_URI + PIPELINE_MONGO_DATABASE from
# the environment, never from arguments, which `ps` shows to everyone; run gunicorn);
# this keeps the container alive exactly as long as gunicorn runs, with its log on stdout, and stops it on
# `docker compose stop`.
set -eu
DATA_DIR=/var/lib/superset
python superset/provision start --host 0.0.0.0 --port 8088 --data-dir "$DATA_DIR"
PID=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$DATA_DIR/superset.pid")
trap 'python superset/provision stop --data-dir "$DATA_DIR"' TERM INT
tail -n +1 -F --pid="$PID" "$DATA_DIR/superset.log" &
wait $!
