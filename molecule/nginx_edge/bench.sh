#!/usr/bin/env bash
# Benchmark the edge's cache hits against nginx serving the same bytes as static files
# (a server block in the same nginx, so the same workers and settings) and against the
# proxy node direct. A report, never a test. Needs the scenario's containers:
#
#   molecule converge -s nginx_edge && molecule/nginx_edge/bench.sh [DURATION] [CONNECTIONS] [ROUNDS]
#
# Each file is measured ROUNDS times on each target, the targets interleaved (static, edge,
# node, static, ...) so a noisy neighbour hits all three alike; the table gives each
# target's median round (by requests/s). Prints a Markdown table. The edge is converged with the rate limit off and a static
# server on :8090 (nginx_edge_http_extra) for the run, and converged back afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PWD/.cache/venv/bin:$PATH GOMIRROR_CACHE=$PWD/.cache
duration=${1:-10s}
conns=${2:-16}
rounds=${3:-3}
edge=172.28.50.30
node=172.28.50.21:3000
tree=$GOMIRROR_CACHE/origin/tree
files=(
  github.com/gin-gonic/gin/@v/v1.9.1.info
  github.com/gin-gonic/gin/@v/v1.9.1.mod
  github.com/go-playground/locales/@v/v0.14.1.zip
)

# Same bytes as static files in the edge container.
for f in "${files[@]}"; do
  docker exec edge-edge mkdir -p "/srv/static/$(dirname "$f")"
  docker cp "$tree/$f" "edge-edge:/srv/static/$f" >/dev/null
done
docker exec edge-edge chmod -R a+rX /srv/static

extra='{"nginx_edge_rate_limit": 0, "nginx_edge_http_extra": ["server { listen 8090; root /srv/static; types { } default_type application/octet-stream; }"]}'
molecule converge -s nginx_edge -- -e "$extra" >/dev/null
trap 'molecule converge -s nginx_edge >/dev/null' EXIT

run() {  # URL -> "req/s p50 p99"
  wrk -t1 -c"$conns" -d"$duration" --latency "$1" |
    awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print rps, p50, p99}'
}

median() {  # lines "req/s p50 p99" -> the median line by req/s
  sort -n | awk '{l[NR]=$0} END {print l[int((NR+1)/2)]}'
}

echo "| File | Target | Requests/s | p50 | p99 | vs static |"
echo "|---|---|---|---|---|---|"
for f in "${files[@]}"; do
  # Fill the cache, then check the edge answers from it.
  curl -s -o /dev/null "http://$edge/$f"
  status=$(curl -s -o /dev/null -D - "http://$edge/$f" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status" {print $2}')
  [ "$status" = HIT ] || { echo "edge did not HIT $f ($status)" >&2; exit 1; }
  s_runs=""; e_runs=""; n_runs=""
  for _ in $(seq "$rounds"); do
    s_runs+="$(run "http://$edge:8090/$f")"$'\n'
    e_runs+="$(run "http://$edge/$f")"$'\n'
    n_runs+="$(run "http://$node/$f")"$'\n'
  done
  read -r s_rps s_p50 s_p99 < <(printf '%s' "$s_runs" | median)
  read -r e_rps e_p50 e_p99 < <(printf '%s' "$e_runs" | median)
  read -r n_rps n_p50 n_p99 < <(printf '%s' "$n_runs" | median)
  ratio() { awk -v a="$1" -v b="$s_rps" 'BEGIN {printf "%.2f×", a / b}'; }
  echo "| \`$(basename "$f")\` | nginx static | $s_rps | $s_p50 | $s_p99 | 1.00× |"
  echo "| | edge (cache HIT) | $e_rps | $e_p50 | $e_p99 | $(ratio "$e_rps") |"
  echo "| | proxy node direct | $n_rps | $n_p50 | $n_p99 | $(ratio "$n_rps") |"
  echo "$f static: $(echo $s_runs) edge: $(echo $e_runs) node: $(echo $n_runs)" >&2
done
