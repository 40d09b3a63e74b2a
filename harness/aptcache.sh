#!/usr/bin/env bash
# A local apt cache (apt-cacher-ng on port 3142) that containers use through the
# proxy auto-detect script baked into the base image, so roles install their own
# packages in every test run without going back to the mirror each time.
set -euo pipefail
cache=${GOMIRROR_CACHE:?}
if curl -fsS -o /dev/null "http://127.0.0.1:3142/acng-report.html" 2>/dev/null; then exit 0; fi
mkdir -p "$cache/apt-cacher-ng" "$cache/run/apt-cacher-ng/conf"
# A config of its own without the packaged mirror remaps: those send requests to a
# mirror this machine may not reach; plain proxying fetches from the host apt asked.
printf 'SupportDir: /usr/lib/apt-cacher-ng\nReportPage: acng-report.html\nExThreshold: 4\n' > "$cache/run/apt-cacher-ng/conf/acng.conf"
/usr/sbin/apt-cacher-ng -c "$cache/run/apt-cacher-ng/conf" ForeGround=0 \
  CacheDir="$cache/apt-cacher-ng" LogDir="$cache/run/apt-cacher-ng" \
  PidFile="$cache/run/apt-cacher-ng/pid" SocketPath="$cache/run/apt-cacher-ng/socket" \
  Port=3142 BindAddress=0.0.0.0
for _ in $(seq 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:3142/acng-report.html" 2>/dev/null && exit 0
  sleep 0.1
done
echo "aptcache: apt-cacher-ng did not answer on port 3142" >&2; exit 1
