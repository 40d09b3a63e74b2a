#!/usr/bin/env bash
# Private modules for the lab's internal git host: platform/corelib (three tags),
# platform/service (two tags, requiring corelib) and platform/feature (three tags, the
# newest go.mod retracting v1.1.0, and a branch `next` one commit ahead of v1.2.0).
# Commits use fixed dates and identities so every rebuild yields the same hashes, hence
# the same module zips, sums and pseudo-versions.
#   make_repos.sh DIR   -> DIR/repos/platform/{corelib,service,feature}.git, DIR/htpasswd, DIR/netrc
set -euo pipefail
out=$(realpath -m "$1")
host=git.internal.example
export GIT_AUTHOR_NAME=gomirror GIT_AUTHOR_EMAIL=lab@internal.example
export GIT_COMMITTER_NAME=gomirror GIT_COMMITTER_EMAIL=lab@internal.example
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
rm -rf "$out/repos" "$out/work"
mkdir -p "$out/repos/platform" "$out/work"

commit_tag() { # repo version date
  git -C "$1" add -A
  GIT_AUTHOR_DATE="$3" GIT_COMMITTER_DATE="$3" git -C "$1" commit -q -m "release $2"
  GIT_COMMITTER_DATE="$3" git -C "$1" tag -a "$2" -m "$2"
}

w=$out/work/corelib
git init -q -b main "$w"
printf 'module %s/platform/corelib\n\ngo 1.20\n' "$host" > "$w/go.mod"
day=1
for v in v1.0.0 v1.1.0 v1.2.0; do
  printf '// Package corelib is a private module of the gomirror lab.\npackage corelib\n\n// Version is the release of this module.\nfunc Version() string { return "%s" }\n' "$v" > "$w/corelib.go"
  commit_tag "$w" "$v" "2024-01-0${day}T12:00:00Z"; day=$((day + 1))
done

w=$out/work/service
git init -q -b main "$w"
day=1
for pair in v1.0.0:v1.1.0 v1.1.0:v1.2.0; do
  v=${pair%%:*}; dep=${pair##*:}
  printf 'module %s/platform/service\n\ngo 1.20\n\nrequire %s/platform/corelib %s\n' "$host" "$host" "$dep" > "$w/go.mod"
  printf 'package service\n\nimport "%s/platform/corelib"\n\n// Describe names this service and the corelib it was built with.\nfunc Describe() string { return "service %s on corelib " + corelib.Version() }\n' "$host" "$v" > "$w/service.go"
  commit_tag "$w" "$v" "2024-02-0${day}T12:00:00Z"; day=$((day + 1))
done

w=$out/work/feature
git init -q -b main "$w"
day=1
for v in v1.0.0 v1.1.0 v1.2.0 next; do
  printf 'module %s/platform/feature\n\ngo 1.20\n' "$host" > "$w/go.mod"
  if [ "$v" = v1.2.0 ] || [ "$v" = next ]; then
    printf '\n// v1.1.0 was tagged from a broken commit.\nretract v1.1.0\n' >> "$w/go.mod"
  fi
  printf '// Package feature is a private module of the gomirror lab.\npackage feature\n\n// Release names the commit this module was built from.\nfunc Release() string { return "%s" }\n' "$v" > "$w/feature.go"
  if [ "$v" = next ]; then
    # Work after the newest tag, on its own branch: resolvable only as a pseudo-version.
    git -C "$w" checkout -q -b next
    git -C "$w" add -A
    GIT_AUTHOR_DATE=2024-03-04T12:00:00Z GIT_COMMITTER_DATE=2024-03-04T12:00:00Z \
      git -C "$w" commit -q -m "next: unreleased work"
    git -C "$w" checkout -q main
  else
    commit_tag "$w" "$v" "2024-03-0${day}T12:00:00Z"; day=$((day + 1))
  fi
done

for r in corelib service feature; do
  git clone -q --bare "$out/work/$r" "$out/repos/platform/$r.git"
  git -C "$out/repos/platform/$r.git" update-server-info
done
rm -rf "$out/work"

if [ ! -s "$out/password" ]; then
  openssl rand -hex 12 > "$out/password"
fi
pw=$(cat "$out/password")
printf 'gomirror:%s\n' "$(openssl passwd -apr1 "$pw")" > "$out/htpasswd"
printf 'machine %s\nlogin gomirror\npassword %s\n' "$host" "$pw" > "$out/netrc"
chmod 0644 "$out/htpasswd"; chmod 0600 "$out/netrc"
