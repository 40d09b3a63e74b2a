#!/usr/bin/env bash
# Build the lab's base image (Debian 12 with python3 and systemd) with debootstrap and
# `docker import`, tagged with a hash of its recipe (this script and image/), and
# rebuilt only when the recipe changes. Prints the image name.
# Also tags it gomirror-base:current, the default the molecule scenarios use.
set -euo pipefail
here=$(dirname "$(realpath "$0")")
cache=${GOMIRROR_CACHE:?}
tag=$(cat "$0" "$here"/image/* | sha256sum | cut -c1-12)
image=gomirror-base:$tag
if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" gomirror-base:current
  echo "$image"; exit 0
fi
mirror=$("$here/image/debian-mirror.py" bookworm)
security=$("$here/image/debian-mirror.py" bookworm-security 2>/dev/null || echo "${mirror%/debian}/debian-security")
rootfs=$cache/image/rootfs
rm -rf "$rootfs"; mkdir -p "$rootfs"
echo "image: debootstrap bookworm into $rootfs" >&2
http_proxy=http://127.0.0.1:3142 debootstrap --variant=minbase \
  --include=python3,python3-apt,systemd,systemd-sysv,dbus,ca-certificates,iproute2,procps,sudo,curl,gnupg,openssl \
  bookworm "$rootfs" "$mirror" > "$cache/image/debootstrap.log" 2>&1 \
  || { tail -n 30 "$cache/image/debootstrap.log" >&2; exit 1; }
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
install -m 0755 "$here/image/apt-proxy-detect" "$rootfs/usr/local/bin/apt-proxy-detect"
echo 'Acquire::http::Proxy-Auto-Detect "/usr/local/bin/apt-proxy-detect";' > "$rootfs/etc/apt/apt.conf.d/01proxy-detect"
# A fetch through the apt cache that stalls (seen once: 16 min on an InRelease, its socket
# in CLOSE_WAIT) times out and is retried instead of holding a scenario past its timeout.
printf 'Acquire::http::Timeout "60";\nAcquire::Retries "3";\n' > "$rootfs/etc/apt/apt.conf.d/02timeouts"
# A container needs neither consoles nor udev; an empty machine-id is filled at boot.
for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
            systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
: > "$rootfs/etc/machine-id"
chroot "$rootfs" apt-get clean
tar -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' --change 'CMD ["/lib/systemd/systemd"]' - "$image" >/dev/null
rm -rf "$rootfs"
docker tag "$image" gomirror-base:current
echo "$image"
