#!/usr/bin/env bash
# render.sh MODE OUT : MODE is "host" (loopback, paths in the harness cache) or
# "container" (the origin container; trees mounted under /srv).
set -euo pipefail
here=$(dirname "$(realpath "$0")")
mode=$1 out=$2
case $mode in
  host)
    cache=${GOMIRROR_CACHE:?}
    run=$cache/run
    subst=(USER=root PID=$run/nginx/nginx.pid TEMP=$run/nginx LOGS=$run ORIGIN_LISTEN=127.0.0.1:${GOMIRROR_ORIGIN_PORT:-18080}
           ORIGIN_ROOT=$cache/origin/tree GIT_LISTEN=127.0.0.2:443 PKI=$cache/pki
           GIT_ROOT=$cache/gitserver FCGI_SOCKET=$run/fcgiwrap.sock) ;;
  container)
    subst=(USER=www-data PID=/run/nginx.pid TEMP=/var/lib/nginx LOGS=/var/log/nginx ORIGIN_LISTEN=80
           ORIGIN_ROOT=/srv/origin/tree GIT_LISTEN=443 PKI=/srv/pki GIT_ROOT=/srv/gitserver
           FCGI_SOCKET=/run/fcgiwrap.socket) ;;
  *) echo "render.sh: MODE must be host or container, not '$mode'" >&2; exit 2 ;;
esac
args=()
for kv in "${subst[@]}"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
sed "${args[@]}" "$here/nginx.conf.in" > "$out"
if grep -n '@[A-Z_]*@' "$out"; then echo "render.sh: unsubstituted placeholder" >&2; exit 1; fi
