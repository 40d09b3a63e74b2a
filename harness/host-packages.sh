#!/usr/bin/env bash
# Debian packages the harness runs on the host: the engine's client tools, debootstrap
# for the base image, nginx + fcgiwrap + git for the loopback origin and git host,
# apt-cacher-ng so containers install their packages from a local cache, rsync, wrk,
# BIND for DNS tests. Installs only what is missing.
set -euo pipefail
pkgs=(debootstrap nginx-light fcgiwrap git rsync apt-cacher-ng wrk apache2-utils
      bind9 bind9-dnsutils openssl curl util-linux iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "host-packages: installing ${missing[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts some of these as services where an init system runs; the harness
# starts what it needs itself, on its own ports.
