#!/usr/bin/env bash
# Pack this machine's Go toolchain once into an archive keyed by its version, with its
# sha256, for the roles to install on lab nodes (production points at a URL + sha256).
# Prints the archive path.
set -euo pipefail
cache=${GOMIRROR_CACHE:?}
version=$(go env GOVERSION)
goroot=$(go env GOROOT)
arch=$(go env GOOS)-$(go env GOARCH)
out=$cache/go/$version.$arch.tar.gz
if [ -s "$out" ] && [ -s "$out.sha256" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache/go"
echo "goarchive: packing $goroot ($version)" >&2
# The archive has the official layout (a top-level go/ directory). Test data and the
# API history are left out: a fetching node never builds Go's own tests.
tar -C "$(dirname "$goroot")" --transform "s,^$(basename "$goroot"),go," \
  --exclude='*/test' --exclude='*/api' --exclude='*/testdata' \
  -czf "$out.tmp" "$(basename "$goroot")"
mv "$out.tmp" "$out"
sha256sum "$out" | cut -d' ' -f1 > "$out.sha256"
echo "$out"
