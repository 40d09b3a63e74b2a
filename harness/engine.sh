#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io if the daemon is
# missing, start dockerd in the background if none runs, and wait for it.
set -euo pipefail
log=${GOMIRROR_CACHE:?}/run/dockerd.log
mkdir -p "$(dirname "$log")"
# Every systemd container takes several inotify instances; the kernel's default of 128
# per user runs out with a dozen containers (they exit 255 at start, without logs).
for knob in fs.inotify.max_user_instances=4096 fs.inotify.max_user_watches=1048576; do
  [ "$(sysctl -n "${knob%%=*}")" -ge "${knob##*=}" ] || sysctl -q -w "$knob"
done
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
