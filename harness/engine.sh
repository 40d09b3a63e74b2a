#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io if the daemon is
# missing, start dockerd in the background if none runs, and wait for it.
set -euo pipefail
log=${GOMIRROR_CACHE:?}/run/dockerd.log
mkdir -p "$(dirname "$log")"
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "engine: installing docker.io"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io iptables >/dev/null
fi
if ! pgrep -x dockerd >/dev/null; then
  echo "engine: starting dockerd (log: $log)"
  setsid dockerd >>"$log" 2>&1 < /dev/null &
fi
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && { echo "engine: up"; exit 0; }
  sleep 1
done
echo "engine: dockerd did not answer within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1
