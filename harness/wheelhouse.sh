#!/usr/bin/env bash
# Build the proxy node's wheelhouse on the controller: gomirror-proxy itself plus every
# runtime dependency pinned in proxy/requirements.lock, as wheels for the nodes' Python
# (Debian 12: CPython 3.11, x86_64). The nodes install from it with `pip --no-index`,
# never reaching PyPI, and the versions are exactly the ones the tests ran with.
# Writes DIR/RELEASE = "<version>-<hash of lock + sources>"; prints DIR.
set -euo pipefail
repo=$(dirname "$(dirname "$(realpath "$0")")")
out=${1:-${GOMIRROR_CACHE:?}/wheelhouse}
pip=${PIP:-${GOMIRROR_CACHE:-$repo/.cache}/venv/bin/pip}
hash=$( (cat "$repo/proxy/requirements.lock" "$repo/proxy/pyproject.toml"; \
         find "$repo/proxy/src" -name '*.py' -print0 | sort -z | xargs -0 cat) | sha256sum | cut -c1-12)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/proxy/pyproject.toml")
release=$version-$hash
if [ "$(cat "$out/RELEASE" 2>/dev/null)" = "$release" ]; then echo "$out"; exit 0; fi
echo "wheelhouse: building $release" >&2
rm -rf "$out.new"; mkdir -p "$out.new"
"$pip" download -q --only-binary=:all: --no-deps --dest "$out.new" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
  -r "$repo/proxy/requirements.lock"
"$pip" wheel -q --no-deps --wheel-dir "$out.new" "$repo/proxy"
echo "$release" > "$out.new/RELEASE"
rm -rf "$out"; mv "$out.new" "$out"
echo "$out"
