#!/usr/bin/env bash
# What to do after `make lab`: how to point the go command at the lab.
set -euo pipefail
cat <<'TEXT'

The lab is up. Containers (docker ps --filter label=gomirror.lab=true):
  lab-services          origin (stand-in for the public proxies) + private git host
  lab-cn-north-*        core region   (172.28.20.0/24)
  lab-cn-east-*         regional tier (172.28.21.0/24)

Point go at the lab from the host (empty module cache, default GOSUMDB, verified sums):
  export GOPROXY=http://127.0.0.1:18080 GOMODCACHE=$(mktemp -d) GOFLAGS=-mod=mod
  cd "$(mktemp -d)" && cp "$OLDPWD/harness/origin/workload/go.mod" . && go mod download -x all

From a region's client container (the pinned workload: gin v1.9.1's whole graph):
  docker exec lab-cn-east-client mkdir -p /root/workload
  docker cp harness/origin/workload/go.mod lab-cn-east-client:/root/workload/go.mod
  docker exec -w /root/workload -e GOPROXY=http://origin.internal.example -e GOFLAGS=-mod=mod lab-cn-east-client go mod download -x all

Remove the lab with: make lab-down
TEXT
