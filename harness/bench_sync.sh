#!/usr/bin/env bash
# Benchmark of the mirror_sync role's staged pull (roles/mirror_sync/files/gomirror_sync.py)
# on loopback: an rsync daemon on 127.0.0.1 serves generated GOPROXY stores of N versions;
# after a full first sync, one version is published and the incremental run is measured
# (wall time, files, bytes of changed files, bytes on the wire), next to a plain one-stage
# `rsync -rlpt --delete` of the same change for reference.
#
# Usage: harness/bench_sync.sh [--report docs/benchmarks.md] [N ...]   (default N: 1000 10000)
# A report is appended (never rewritten) under "## mirror_sync". Needs rsync and python3.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
report=""
if [[ ${1:-} == --report ]]; then report=$2; shift 2; fi
sizes=("$@"); [[ ${#sizes[@]} -gt 0 ]] || sizes=(1000 10000)
py=${GOMIRROR_CACHE:-$repo/.cache}/venv/bin/python; [[ -x $py ]] || py=python3
script=$repo/roles/mirror_sync/files/gomirror_sync.py
work=$(mktemp -d /tmp/bench-sync.XXXXXX)
port=18873
pid=""
stop_daemon() { if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
cleanup() { stop_daemon; rm -rf "$work"; }
trap cleanup EXIT

# The goproxy profile's stages, read from the role's defaults (one source of truth).
stages=$("$py" -c 'import json, sys, yaml
print(json.dumps(yaml.safe_load(open(sys.argv[1]))["mirror_sync_profiles"]["goproxy"]))' \
  "$repo/roles/mirror_sync/defaults/main.yml")

gen() {  # gen DIR N: N versions over N/10 modules, 2-6 KiB zips, as the go command lays them out
  python3 - "$1" "$2" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(n)
for m in range(max(1, n // 10)):
    d = os.path.join(root, f"example.com/bench/mod{m:05d}/@v")
    os.makedirs(d, exist_ok=True)
    versions = [f"v1.0.{v}" for v in range(min(10, n))]
    for v in versions:
        open(f"{d}/{v}.zip", "wb").write(rng.randbytes(rng.randint(2048, 6144)))
        open(f"{d}/{v}.mod", "w").write(f"module example.com/bench/mod{m:05d}\n")
        open(f"{d}/{v}.info", "w").write(f'{{"Version":"{v}","Time":"2026-01-01T00:00:00Z"}}\n')
    open(f"{d}/list", "w").write("\n".join(versions) + "\n")
EOF
}

publish() {  # publish DIR: one new version (256 KiB zip), content first, index last
  local d=$1/example.com/bench/new/@v
  mkdir -p "$d"
  head -c 262144 /dev/urandom > "$d/v1.0.0.zip"
  printf 'module example.com/bench/new\n' > "$d/v1.0.0.mod"
  printf '{"Version":"v1.0.0","Time":"2026-01-01T00:00:00Z"}\n' > "$d/v1.0.0.info"
  printf 'v1.0.0\n' > "$d/list"
  du -bc "$d"/* | tail -1 | cut -f1
}

rows=()
for n in "${sizes[@]}"; do
  src=$work/src-$n; mkdir -p "$src" "$work/state"
  gen "$src" "$n"
  printf 'bench:secret\n' > "$work/secrets"; printf 'secret\n' > "$work/password"
  chmod 600 "$work/secrets" "$work/password"
  cat > "$work/rsyncd.conf" <<EOF
use chroot = no
pid file = $work/rsyncd.pid
lock file = $work/rsyncd.lock
log file = $work/rsyncd.log
[store]
  path = $src
  read only = yes
  auth users = bench
  secrets file = $work/secrets
  hosts allow = 127.0.0.1
EOF
  stop_daemon
  rm -f "$work/rsyncd.pid"
  port=$((port + 1))  # a fresh port per store: no wait for the old socket
  rsync --daemon --no-detach --config="$work/rsyncd.conf" --address=127.0.0.1 --port=$port &
  pid=$!
  for _ in $(seq 50); do rsync --list-only rsync://127.0.0.1:$port/ >/dev/null 2>&1 && break; sleep 0.1; done
  rsync --list-only rsync://127.0.0.1:$port/ >/dev/null || { echo "bench_sync: rsync daemon did not start" >&2; exit 1; }

  cat > "$work/job-$n.json" <<EOF
{"name": "bench$n", "source": "rsync://127.0.0.1:$port/store", "user": "bench",
 "password_file": "$work/password", "destination": "$work/dst-$n/store",
 "temp_dir": "$work/dst-$n/.store.sync-tmp", "state_dir": "$work/state", "lock_dir": "$work",
 "stages": $stages}
EOF
  python3 "$script" --config "$work/job-$n.json" >/dev/null           # full first sync
  rsync -rlpt --password-file="$work/password" \
    "rsync://bench@127.0.0.1:$port/store/" "$work/plain-$n/"            # reference replica
  added=$(publish "$src")
  start=$EPOCHREALTIME
  python3 "$script" --config "$work/job-$n.json" >/dev/null
  staged=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')
  read -r files bytes wire <<<"$("$py" -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(s["files_transferred"], s["bytes_transferred"], s["bytes_received"] + s["bytes_sent"])' \
    "$work/state/bench$n.json")"
  start=$EPOCHREALTIME
  plain_out=$(rsync -rlpt --delete --stats --no-h --password-file="$work/password" \
    "rsync://bench@127.0.0.1:$port/store/" "$work/plain-$n/")
  plain=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')
  plain_wire=$(awk -F': ' '/^Total bytes (sent|received)/ {s += $2} END {print s}' <<<"$plain_out")
  nfiles=$(find "$src" -type f | wc -l)
  rows+=("| $n | $nfiles | $added | $files | $bytes | $wire | $staged | $plain_wire | $plain |")
done

table=$(printf '%s\n' \
  "| Versions | Files in store | New version (bytes) | Files moved | Bytes moved | Bytes on the wire (staged) | Staged run (s) | Bytes on the wire (one-stage rsync) | One-stage rsync (s) |" \
  "|---|---|---|---|---|---|---|---|---|" "${rows[@]}")
echo "$table"
if [[ -n $report ]]; then
  {
    printf '\n## mirror_sync\n\n'
    printf 'Incremental pull after publishing one version (`.zip` of 256 KiB, `.mod`, `.info`, `list`) into\n'
    printf 'generated GOPROXY stores, rsync daemon on loopback, goproxy profile (content, re-list, index,\n'
    printf 'delete, trace: five rsync runs) against one plain `rsync -rlpt --delete` of the same change.\n'
    printf 'Measured %s on %s (%s CPUs, rsync %s) with `harness/bench_sync.sh --report %s %s`.\n\n' \
      "$(date -u +%Y-%m-%d)" "$(uname -n)" "$(nproc)" "$(rsync --version | awk 'NR==1 {print $3}')" \
      "$report" "${sizes[*]}"
    echo "$table"
  } >> "$report"
fi
