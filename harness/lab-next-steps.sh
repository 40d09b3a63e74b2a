#!/usr/bin/env bash
# What to do after `make lab`: how to point the go command at the lab.
set -euo pipefail
repo=$(dirname "$(dirname "$(realpath "$0")")")
sed "s|@REPO@|$repo|g" <<'TEXT'

The lab is up (docker ps --filter label=gomirror.lab=true):
  region cn-north (core, 172.28.20.0/24): lab-cn-north-node1 (proxy node, rsync source),
                                          lab-cn-north-edge1 (edge 172.28.20.41), lab-cn-north-client
  region cn-east (172.28.21.0/24):        lab-cn-east-node1 (proxy node, syncs from core),
                                          lab-cn-east-edge1 (edge 172.28.21.41), lab-cn-east-client
  lab-dns      GeoDNS for goproxy.lab.internal.example (172.28.20.53 / 172.28.21.53)
  lab-services origin (stand-in for the public proxies) + private git host

Mirror name: goproxy.lab.internal.example    DNS server: 172.28.20.53
  dig +short @172.28.20.53 goproxy.lab.internal.example     # the cn-north edge from this host

Download gin v1.9.1's whole graph through the lab from this host (empty module cache,
default GOSUMDB, checked through the mirror's checksum-database proxy):
  cd "$(mktemp -d)" && cp @REPO@/harness/origin/workload/go.mod . && GOPROXY=http://172.28.20.41 GOFLAGS=-mod=mod GOMODCACHE="$PWD/modcache" go mod download -x all

From a region's client, which resolves the mirror name through the GeoDNS server:
  docker exec lab-cn-east-client sh -c 'cd $(mktemp -d) && printf "module x\ngo 1.20\nrequire github.com/gin-gonic/gin v1.9.1\nrequire golang.org/x/text v0.10.0\n" > go.mod && go mod download all && go env GOPROXY'

Remove the lab with: make lab-down
TEXT
