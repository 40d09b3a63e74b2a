#!/usr/bin/env bash
# Host-side origin and git server on loopback, for the tests that run on the host:
#   origin  http://127.0.0.1:${GOMIRROR_ORIGIN_PORT:-18080}
#   git     https://git.internal.example (127.0.0.2:443; resolve it with harness/with-lab-hosts)
# services.sh up|down
set -euo pipefail
here=$(dirname "$(realpath "$0")")
cache=${GOMIRROR_CACHE:?set GOMIRROR_CACHE (the Makefile does)}
run=$cache/run
port=${GOMIRROR_ORIGIN_PORT:-18080}
conf=$run/services-nginx.conf

stop() {
  [ -s "$run/nginx/nginx.pid" ] && kill "$(cat "$run/nginx/nginx.pid")" 2>/dev/null || true
  [ -s "$run/fcgiwrap.pid" ] && kill "$(cat "$run/fcgiwrap.pid")" 2>/dev/null || true
  rm -f "$run/nginx/nginx.pid" "$run/fcgiwrap.pid" "$run/fcgiwrap.sock"
}

case ${1:-} in
  up)
    if health=$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null); then
      if [ "$health" = "ok $cache/origin/tree" ]; then
        echo "services: origin already answers on 127.0.0.1:$port"; exit 0
      fi
      echo "services: 127.0.0.1:$port already serves another checkout's origin ($health);" \
           "stop it there with 'make services-down' first" >&2
      exit 1
    fi
    stop
    mkdir -p "$run/nginx"
    GOMIRROR_CACHE=$cache "$here/services/render.sh" host "$conf"
    ( setsid fcgiwrap -s "unix:$run/fcgiwrap.sock" >>"$run/fcgiwrap.log" 2>&1 & echo $! > "$run/fcgiwrap.pid" )
    for _ in $(seq 50); do [ -S "$run/fcgiwrap.sock" ] && break; sleep 0.1; done
    nginx -t -q -c "$conf" -e "$run/services-error.log"
    nginx -c "$conf" -e "$run/services-error.log"
    for _ in $(seq 50); do
      curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && { echo "services: up"; exit 0; }
      sleep 0.1
    done
    echo "services: origin did not answer on 127.0.0.1:$port; see $run/services-error.log" >&2; exit 1 ;;
  down) stop; echo "services: down" ;;
  *) echo "usage: services.sh up|down" >&2; exit 2 ;;
esac
