#!/usr/bin/env bash
# The image of the lab's "services" host: the hermetic origin and the private git
# server in one container (nginx + fcgiwrap + git-http-backend under systemd). Built
# on the base image; its tag hashes the base tag and this recipe. Trees, keys and
# repositories are mounted at run time (/srv/origin/tree, /srv/gitserver, /srv/pki),
# so refilling the origin needs no rebuild.
set -euo pipefail
here=$(dirname "$(realpath "$0")")
base=$("$here/image.sh")
tag=$( (echo "$base"; cat "$0" "$here/services/nginx.conf.in" "$here/services/render.sh") | sha256sum | cut -c1-12)
image=gomirror-services:$tag
if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" gomirror-services:current; echo "$image"; exit 0
fi
echo "services-image: building $image" >&2
conf=$(mktemp); trap 'rm -f "$conf"; docker rm -f gomirror-services-build >/dev/null 2>&1 || true' EXIT
"$here/services/render.sh" container "$conf"
docker rm -f gomirror-services-build >/dev/null 2>&1 || true
docker run -d --name gomirror-services-build "$base" sleep infinity >/dev/null
docker cp "$conf" gomirror-services-build:/tmp/nginx.conf
docker exec gomirror-services-build sh -ec '
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light fcgiwrap git >/dev/null
  install -m 0644 /tmp/nginx.conf /etc/nginx/nginx.conf
  rm -f /etc/nginx/sites-enabled/default
  mkdir -p /srv/origin/tree /srv/gitserver /srv/pki
  systemctl enable nginx.service fcgiwrap.socket >/dev/null 2>&1
  apt-get clean'
docker commit --change 'CMD ["/lib/systemd/systemd"]' gomirror-services-build "$image" >/dev/null
docker tag "$image" gomirror-services:current
echo "$image"
